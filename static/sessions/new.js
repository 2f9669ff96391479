// The new-session form: Ctrl/Cmd+Enter in the prompt submits; one submission per click.
(function () {
  "use strict";
  const form = document.getElementById("new-session-form");
  if (!form) return;
  const button = document.getElementById("create");
  form.addEventListener("submit", () => {
    button.disabled = true;
    button.textContent = "Starting…";
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !button.disabled) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  // Back from the session page (bfcache): the button must work again.
  window.addEventListener("pageshow", () => {
    button.disabled = false;
    button.textContent = "Start session";
  });
})();
