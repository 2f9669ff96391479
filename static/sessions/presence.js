// Who is here now and who is typing (sessions/presence.py sends both on the session's socket; session.js
// passes every message on as an `inspect:reply` event). Someone who leaves stays shown for LEAVE_GRACE_MS, so
// a reconnect (theirs or ours) never makes them flicker; typing shows for TYPING_SHOWN_MS after the last one.
(function () {
  "use strict";
  const list = document.getElementById("presence");
  const typingLine = document.getElementById("typing");
  if (!list || !typingLine) return;
  const LEAVE_GRACE_MS = 4000;
  const TYPING_SHOWN_MS = 5000;
  const SURFACE_LABELS = { web: "on the web", phone: "on a phone", extension: "in the Chrome extension", slack: "in Slack" };
  const shown = new Map(); // user id -> {person, leaving: the timer that removes them, or null}
  const typing = new Map(); // user id -> {name, until}
  let typingTimer = null;

  function initials(name) {
    const parts = String(name).trim().split(/[\s._@-]+/).filter(Boolean);
    return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
  }

  function render() {
    list.replaceChildren();
    for (const [id, { person, leaving }] of shown) {
      const item = document.createElement("li");
      item.className = "person";
      item.dataset.userId = id;
      item.dataset.surfaces = person.surfaces.join(" ");
      if (typing.has(id)) item.classList.add("typing");
      const where = person.surfaces.map((s) => SURFACE_LABELS[s] || s).join(", ");
      item.title = `${person.name} (${person.username}), ${where}`;
      const avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.textContent = initials(person.name);
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = person.name;
      item.append(avatar, name);
      for (const surface of person.surfaces) {
        const tag = document.createElement("span");
        tag.className = `surface surface-${surface}`;
        tag.textContent = surface;
        item.append(tag);
      }
      list.append(item);
    }
  }

  function people(everyone) {
    const present = new Set();
    for (const person of everyone) {
      const id = String(person.id);
      present.add(id);
      const known = shown.get(id);
      if (known && known.leaving) clearTimeout(known.leaving);
      shown.set(id, { person, leaving: null });
    }
    for (const [id, entry] of shown) {
      if (present.has(id) || entry.leaving) continue;
      entry.leaving = setTimeout(() => { shown.delete(id); render(); }, LEAVE_GRACE_MS);
    }
    render();
  }

  function renderTyping() {
    const now = performance.now();
    for (const [id, who] of typing) if (who.until <= now) typing.delete(id);
    const names = [...typing.values()].map((who) => who.name);
    typingLine.textContent = names.length === 0 ? "" :
      names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
    clearTimeout(typingTimer);
    if (typing.size) typingTimer = setTimeout(renderTyping, 500);
    render();
  }

  document.addEventListener("inspect:reply", (event) => {
    const msg = event.detail;
    if (msg.type === "presence" && Array.isArray(msg.people)) people(msg.people);
    else if (msg.type === "typing" && msg.user_id !== undefined) {
      typing.set(String(msg.user_id), { name: String(msg.name || "someone"), until: performance.now() + TYPING_SHOWN_MS });
      renderTyping();
    }
  });
})();
