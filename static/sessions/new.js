// The new-session form: Ctrl/Cmd+Enter in the prompt submits; one submission per click; writing
// the prompt warms a sandbox.
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
  // Writing the prompt starts a sandbox for the chosen repo, which the session then claims: asked
  // again every 30 s of writing (the server keeps it warm for a few minutes per ask).
  const repo = document.getElementById("id_repo");
  const prompt = document.getElementById("id_prompt");
  const warmed = new Map(); // repo id -> when it was last asked for
  function warm() {
    if (!repo || !prompt || !repo.value || !prompt.value.trim()) return;
    if (performance.now() - (warmed.get(repo.value) ?? -Infinity) < 30000) return;
    warmed.set(repo.value, performance.now());
    const body = new FormData();
    body.append("repo", repo.value);
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    fetch(form.dataset.warmUrl, { method: "POST", body, credentials: "same-origin" }).catch(() => {});
  }
  prompt?.addEventListener("input", warm);
  repo?.addEventListener("change", warm);
  // Back from the session page (bfcache): the button must work again.
  window.addEventListener("pageshow", () => {
    button.disabled = false;
    button.textContent = "Start session";
  });
})();
