// The owner's "Share" dialog: who is in the session (read each time it opens, so people who joined by link
// since the page loaded are there), invitations by username or email, each member's role, removal, and the
// join link. Every change is posted as JSON (sessions/views.py); the server's message shows when it refuses.
(function () {
  "use strict";
  const dialog = document.getElementById("share-dialog");
  if (!dialog) return;
  const $ = (id) => document.getElementById(id);
  const notice = $("share-notice");
  const list = $("share-members");
  const csrf = dialog.querySelector("input[name=csrfmiddlewaretoken]").value;
  const roles = [...$("share-role").options].map((option) => [option.value, option.textContent]);

  async function call(url, body) {
    notice.textContent = body ? "Saving…" : "";
    notice.classList.remove("error");
    let answer = {};
    let response = null;
    try {
      response = await fetch(url, body ? {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      } : { credentials: "same-origin" });
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

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showLink(url, role) {
    $("share-link-on").checked = Boolean(url);
    $("share-link").value = url || "";
    $("share-link").hidden = $("share-link-new").hidden = !url;
    if (role) $("share-link-role").value = role;
  }

  function show(answer) {
    list.replaceChildren();
    for (const member of answer.members) {
      const row = el("li");
      row.dataset.userId = member.user_id;
      row.dataset.role = member.role;
      row.append(el("span", "member-name", member.name));
      if (member.role === "owner") row.append(el("span", "muted", "owner"));
      else {
        const select = el("select", "member-role");
        select.setAttribute("aria-label", `Role of ${member.username}`);
        for (const [value, label] of roles) select.append(new Option(label, value, false, value === member.role));
        const remove = el("button", "member-remove small danger", "Remove");
        remove.type = "button";
        row.append(select, remove);
      }
      list.append(row);
    }
    showLink(answer.link, answer.link_role);
  }

  async function refresh() {
    const answer = await call(dialog.dataset.membersUrl);
    if (answer) show(answer);
  }

  $("share-open").addEventListener("click", () => { dialog.showModal(); refresh(); });
  $("share-close").addEventListener("click", () => dialog.close());

  $("share-invite").addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await call(dialog.dataset.membersUrl, { name: $("share-name").value, role: $("share-role").value });
    if (answer) { show(answer); $("share-name").value = ""; }
  });
  list.addEventListener("change", async (event) => {
    const select = event.target.closest(".member-role");
    if (!select) return;
    const row = select.closest("li");
    if (await call(`${dialog.dataset.membersUrl}/${row.dataset.userId}`, { role: select.value })) refresh();
    else select.value = row.dataset.role;
  });
  list.addEventListener("click", async (event) => {
    const button = event.target.closest(".member-remove");
    if (!button) return;
    button.disabled = true;
    if (await call(`${dialog.dataset.membersUrl}/${button.closest("li").dataset.userId}`, { remove: true })) refresh();
    else button.disabled = false;
  });

  async function setLink(on, fresh) {
    const answer = await call(dialog.dataset.linkUrl, { on, new: Boolean(fresh), role: $("share-link-role").value });
    if (answer) showLink(answer.url, answer.role);
    else $("share-link-on").checked = !on;
  }
  $("share-link-on").addEventListener("change", (event) => setLink(event.target.checked));
  $("share-link-new").addEventListener("click", () => setLink(true, true));
  $("share-link-role").addEventListener("change", () => setLink($("share-link-on").checked));
})();
