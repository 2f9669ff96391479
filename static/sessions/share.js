// The owner's "Share" dialog: invite by username or email, change a member's role or remove them, turn the join
// link on or off or make a new one. Each change is posted as JSON (sessions/views.py); the page reloads the
// dialog's list after it, and shows the server's message when it refuses.
(function () {
  "use strict";
  const dialog = document.getElementById("share-dialog");
  if (!dialog) return;
  const $ = (id) => document.getElementById(id);
  const notice = $("share-notice");
  const csrf = dialog.querySelector("input[name=csrfmiddlewaretoken]").value;

  async function post(url, body) {
    notice.textContent = "Saving…";
    notice.classList.remove("error");
    let answer = {};
    let response;
    try {
      response = await fetch(url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      });
      answer = await response.json().catch(() => ({}));
    } catch (e) {
      answer = { error: "The server could not be reached: try again." };
    }
    if (!response || !response.ok) {
      notice.textContent = answer.error || "That did not work.";
      notice.classList.add("error");
      return null;
    }
    notice.textContent = "";
    return answer;
  }

  function reopen() {
    sessionStorage.setItem("inspect.share.open", "1");
    location.reload();
  }

  $("share-open").addEventListener("click", () => dialog.showModal());
  $("share-close").addEventListener("click", () => dialog.close());
  if (sessionStorage.getItem("inspect.share.open")) {
    sessionStorage.removeItem("inspect.share.open");
    dialog.showModal();
  }

  $("share-invite").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await post(dialog.dataset.inviteUrl, { name: $("share-name").value, role: $("share-role").value })) reopen();
  });
  $("share-members").addEventListener("change", async (event) => {
    const select = event.target.closest(".member-role");
    if (!select) return;
    const row = select.closest("li");
    if (await post(`${dialog.dataset.memberUrl}${row.dataset.userId}`, { role: select.value })) reopen();
    else select.value = row.dataset.role;
  });
  $("share-members").addEventListener("click", async (event) => {
    const button = event.target.closest(".member-remove");
    if (!button) return;
    const row = button.closest("li");
    if (await post(`${dialog.dataset.memberUrl}${row.dataset.userId}`, { remove: true })) reopen();
  });

  async function setLink(on, fresh) {
    const answer = await post(dialog.dataset.linkUrl, { on, new: Boolean(fresh), role: $("share-link-role").value });
    if (!answer) { $("share-link-on").checked = !on; return; }
    $("share-link").value = answer.url;
    $("share-link").hidden = $("share-link-new").hidden = !answer.url;
  }
  $("share-link-on").addEventListener("change", (event) => setLink(event.target.checked));
  $("share-link-new").addEventListener("click", () => setLink(true, true));
  $("share-link-role").addEventListener("change", () => setLink($("share-link-on").checked));
})();
