// Hands the freshly minted token to the organisation's extension, which alone receives messages from this origin
// (its manifest's externally_connectable). The token is then dropped from the page.
(function () {
  "use strict";
  const box = document.getElementById("extension-connect");
  const data = document.getElementById("extension-token");
  const state = document.getElementById("connect-state");
  if (!box || !data) return;
  const token = JSON.parse(data.textContent);
  data.remove();
  const runtime = window.chrome && window.chrome.runtime;
  if (!runtime || !runtime.sendMessage) {
    state.textContent = "The extension is not installed in this browser: install it, then connect again.";
    return;
  }
  runtime.sendMessage(box.dataset.extensionId, { type: "inspect-token", token }, (answer) => {
    state.textContent = answer && answer.ok ? "Connected: you can close this tab."
      : "The extension did not answer: check that it is installed and enabled, then connect again.";
  });
})();
