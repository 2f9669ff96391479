// Follows a build on the image page: polls the log endpoint every second and appends what is
// new to <pre id="build-log">, until the endpoint says the build finished.
(function () {
  "use strict";
  const log = document.getElementById("build-log");
  if (!log) return;
  const status = document.getElementById("build-status");
  const finished = document.getElementById("build-finished");
  let offset = parseInt(log.dataset.offset, 10) || 0;

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 20;
  }

  async function poll() {
    let data;
    try {
      const response = await fetch(`${log.dataset.url}?offset=${offset}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.status === 403 || response.status === 404) return; // signed out, or the image is gone
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      data = await response.json();
    } catch (error) {
      setTimeout(poll, 3000); // the server restarting: try again, slower
      return;
    }
    const follow = atBottom();
    if (data.reset) log.textContent = "";
    if (data.log) log.append(data.log); // a text node: the log is never parsed as HTML
    offset = data.offset;
    if (follow) log.scrollTop = log.scrollHeight;
    status.textContent = data.status_display;
    status.className = `build-status status-${data.status}`;
    if (data.finished) {
      finished.hidden = false;
    } else {
      setTimeout(poll, 1000);
    }
  }

  log.scrollTop = log.scrollHeight;
  setTimeout(poll, 1000);
})();
