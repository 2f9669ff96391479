// "Create pull request": the dialog (title and description prefilled by the server, draft or ready), its POST,
// and the header's badge, kept current from the session's events (pull_request: opened, updated by a webhook;
// pull_request_failed: why not). Loaded before session.js so it hears every event, the replayed ones too.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const dialog = $("pr-dialog");
  const form = $("pr-form");
  const openButton = $("pr-open");
  const badge = $("pr-badge");
  const notice = $("pr-notice");
  const submit = $("pr-submit");
  if (!dialog || !form) return;
  let opening = false;

  function say(text, isError) {
    notice.textContent = text || "";
    notice.classList.toggle("error", Boolean(isError));
  }

  function showPullRequest(d) {
    if (!d || !d.number) return;
    const state = d.state === "open" && d.draft ? "draft" : d.state;
    const review = d.review_state && d.state === "open" ? ` · ${d.review_state.replace("_", " ")}` : "";
    badge.textContent = `PR #${d.number} ${state}${review}`;
    badge.dataset.state = state;
    if (/^https?:\/\//.test(d.url || "")) badge.href = d.url; // GitHub's own address, nothing else
    badge.hidden = false;
    // An open one takes later pushes and edits of its title and description; after it closed, a new one.
    openButton.textContent = d.state === "open" ? "Update pull request" : "Create pull request";
  }

  function finish() {
    opening = false;
    submit.disabled = false;
    openButton.disabled = false;
  }

  document.addEventListener("inspect:event", (event) => {
    const { ev } = event.detail;
    if (ev.kind === "pull_request") {
      showPullRequest(ev.data);
      if (opening) { finish(); dialog.close(); }
    } else if (ev.kind === "pull_request_failed" && opening) {
      finish();
      say(ev.data.message || "The pull request could not be opened.", true);
    }
  });

  // The title and description as the session is now (the page may be older than its last prompts).
  let edited = false;
  form.addEventListener("input", () => { edited = true; });
  openButton.addEventListener("click", async () => {
    say("");
    dialog.showModal();
    if (edited) return;
    try {
      const answer = await fetch(form.dataset.url, { credentials: "same-origin" });
      const fresh = answer.ok ? await answer.json() : null;
      if (fresh && !edited) {
        $("pr-title").value = fresh.title;
        $("pr-body").value = fresh.body;
        if (fresh.github_problem) say(fresh.github_problem, true);
      }
    } catch (error) {
      say("The title and description could not be fetched; write them, or try again.", true);
    }
  });
  $("pr-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (opening) return;
    opening = true;
    submit.disabled = openButton.disabled = true;
    say("Pushing the branch and opening the pull request…");
    const body = { title: $("pr-title").value, body: $("pr-body").value, draft: $("pr-draft").checked };
    try {
      const answer = await fetch(form.dataset.url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.elements.csrfmiddlewaretoken.value },
      });
      if (!answer.ok) {
        const reply = await answer.json().catch(() => ({}));
        finish();
        say(reply.error || `The server answered ${answer.status}.`, true);
      } // else the outcome arrives as an event
    } catch (error) {
      finish();
      say("The request did not reach the server; try again.", true);
    }
  });
})();
