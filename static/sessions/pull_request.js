// "Create pull request": the dialog (its title and description fetched when it opens, draft or ready), its POST,
// the header's badge, kept current from the session's events (pull_request: opened, updated by a webhook;
// pull_request_failed: why not), and how the timeline shows commits and those events. Loaded before session.js
// so it hears every event, the replayed ones too.
(function () {
  "use strict";
  // How the timeline shows commits and pull-request events (session.js calls these with its helpers).
  window.inspectTimelineKinds = {
    ...(window.inspectTimelineKinds || {}),
    commit(ev, d, { el, add, nameOf }) {
      const node = add(el("div", "commit"), ev);
      node.dataset.sha = d.sha || "";
      const names = [nameOf(d.author), ...(Array.isArray(d.co_authors) ? d.co_authors.map(nameOf) : [])];
      const head = el("div", "ev-head");
      head.append(el("span", "commit-label", "Commit"), el("span", "sha", String(d.sha || "").slice(0, 8)),
        el("span", "commit-authors", names.join(", ")),
        el("span", "handoff", d.handed_off ? "" : `not handed over yet${d.handoff_error ? `: ${d.handoff_error}` : ""}`));
      const files = el("ul", "commit-files");
      for (const file of Array.isArray(d.files) ? d.files : []) {
        const item = el("li", "commit-file");
        item.append(el("span", "path", file.path), el("span", "adds", file.added === null ? "binary" : `+${file.added}`),
          el("span", "dels", file.removed === null ? "" : `−${file.removed}`));
        files.append(item);
      }
      if (d.more_files > 0) files.append(el("li", "more", `and ${d.more_files} more files`));
      node.append(head, el("div", "commit-message", String(d.message || "").split("\n\nCo-authored-by:")[0]), files);
    },
    pull_request(ev, d, { note, nameOf }) {
      const state = d.state === "open" && d.draft ? "draft" : d.state;
      note(ev, `Pull request #${d.number} ${state}${d.by ? ` by ${nameOf(d.by)}` : ""}${d.review_state ? `, review: ${d.review_state.replace("_", " ")}` : ""}`, "note-pr");
    },
    pull_request_failed(ev, d, { note }) { note(ev, `Pull request not opened: ${d.message || "no reason given"}`, "note-error"); },
    branch_pushed(ev, d, { note }) { note(ev, `Pushed ${String(d.sha || "").slice(0, 8)} to pull request #${d.number}`, "note-pr"); },
    push_failed(ev, d, { note }) { note(ev, `The push to pull request #${d.number} was refused: ${d.message || ""}`, "note-error"); },
  };

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
