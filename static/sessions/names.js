// What the server says about names and groups, read once for the page's other scripts: how services are named
// (ide/names.py SERVICE_NAMES) and which sandbox states are starting or alive (ide/views.py).
(function () {
  "use strict";

  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const serviceNames = read("service-names");
  const sandboxStates = read("sandbox-states");

  window.inspectNames = {
    sandboxStates, // {starting: [...], alive: [...]}
    // "VS Code", "Desktop", "Preview :3000"; a service the server does not name keeps its own name.
    serviceLabel(name) {
      const port = /^preview-(\d+)$/.exec(name || "");
      const names = serviceNames[port ? "preview" : name];
      return names ? names.label.replace("{port}", port ? port[1] : "") : String(name);
    },
  };
})();
