// The session page: the live timeline (each event kind rendered into it), the prompt box, the queue,
// Stop. Events come in order, exactly once, from the session's stream (live.js). The page keeps the
// last seq it showed in this tab's sessionStorage only to mark where "new since you last looked"
// starts: a fresh page load has an empty timeline, so the stream starts from 0.
// All data goes into the page with textContent / text nodes: nothing from an event is parsed as HTML.
(function () {
  "use strict";
  const root = document.getElementById("session");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const timeline = $("timeline");
  const queueBox = $("queue-box");
  const queue = $("queue");
  const input = $("prompt-input");
  const sendButton = $("send");
  const stopButton = $("stop");
  const notice = $("composer-notice");
  const socketState = $("socket-state");
  const statusBadge = $("session-status");
  const phase = $("sandbox-phase");
  const title = $("session-title");

  const MAX_SHOWN = 20000; // characters of one tool input/output shown; the rest is elided
  const { sandboxStates, serviceLabel } = window.inspectNames; // names.js
  const storageKey = `inspect.session.${root.dataset.sessionId}.seq`;
  const seenBefore = Number(readStorage()) || 0;
  let shownSeq = 0;
  let stream = null; // live.js
  let pendingPrompt = false;
  let unreadMarked = false;
  let stick = true; // follow new events while the reader is at the bottom
  let flushQueued = false;
  let busy = root.dataset.busy === "true";

  // --- small DOM helpers ----------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function readStorage() {
    try { return sessionStorage.getItem(storageKey); } catch (e) { return null; }
  }

  function add(node, ev) {
    node.classList.add("ev");
    node.dataset.seq = ev.seq;
    node.dataset.kind = ev.kind;
    if (seenBefore && !unreadMarked && ev.seq > seenBefore) {
      unreadMarked = true;
      timeline.append(el("div", "unread-marker", "new since you last looked"));
    }
    timeline.append(node);
    return node;
  }

  function note(ev, text, extra) {
    return add(el("div", `note ${extra || ""}`.trim(), text), ev);
  }

  function clip(value) {
    let text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    if (text === undefined || text === null) return "";
    if (text.length > MAX_SHOWN) text = `${text.slice(0, MAX_SHOWN)}\n… (${text.length - MAX_SHOWN} more characters)`;
    return text;
  }

  function nameOf(person) {
    if (person && typeof person === "object") return person.name || "someone";
    return person ? String(person) : "someone";
  }

  function timeOf(ev) {
    const date = new Date(ev.created_at);
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function byData(selector, name, value) {
    for (const node of timeline.querySelectorAll(selector)) if (node.dataset[name] === String(value)) return node;
    return null;
  }

  // --- header state ---------------------------------------------------------------------

  function setStatus(status) {
    if (!status) return;
    root.dataset.status = status;
    statusBadge.textContent = status;
    statusBadge.className = `badge status-${status}`;
    setPhase(phase.dataset.state, phase.dataset.reason); // no "starting" pulse once the session ended
    updateComposer();
  }

  function setPhase(state, reason) {
    if (!state) return;
    phase.dataset.state = state;
    phase.dataset.reason = reason || "";
    const ended = ["failed", "archived"].includes(root.dataset.status);
    phase.classList.toggle("starting", sandboxStates.starting.includes(state) && !ended);
    phase.textContent = `sandbox: ${state}${reason ? ` (${reason})` : ""}`;
  }

  function setBusy(value) {
    busy = value;
    root.dataset.busy = String(value);
    updateComposer();
  }

  function setSocketState(state, text) {
    socketState.dataset.state = state;
    socketState.textContent = text || state;
    updateComposer();
  }

  function updateComposer() {
    const open = stream !== null && stream.isOpen();
    sendButton.disabled = !open || pendingPrompt;
    stopButton.hidden = !busy;
    stopButton.disabled = !open || stopButton.dataset.sent === "true";
  }

  function showNotice(text, isError) {
    notice.textContent = text || "";
    notice.classList.toggle("error", Boolean(isError));
  }

  // --- the queue ------------------------------------------------------------------------

  function queueItem(promptId) {
    for (const node of queue.children) if (node.dataset.promptId === String(promptId)) return node;
    return null;
  }

  function enqueue(d) {
    if (queueItem(d.prompt_id)) return;
    const item = el("li", "queue-item");
    item.dataset.promptId = d.prompt_id;
    item.append(el("span", "queue-text", d.text), el("span", "queue-author", nameOf(d.author)));
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.dataset.promptId = d.prompt_id;
    item.append(cancel);
    queue.append(item);
    queueBox.hidden = false;
  }

  function dequeue(promptId) {
    const item = queueItem(promptId);
    if (item) item.remove();
    queueBox.hidden = queue.children.length === 0;
  }

  function setPromptState(promptId, state, by) {
    const node = byData(".prompt", "promptId", promptId);
    if (!node) return;
    node.dataset.state = state;
    node.querySelector(".prompt-state").textContent = by ? `${state} by ${nameOf(by)}` : state;
  }

  // --- rendering each kind --------------------------------------------------------------

  function assistantPart(ev, d) {
    let node = byData(".assistant-text", "partId", d.part_id);
    if (!node) {
      node = add(el("div", "assistant-text"), ev);
      node.dataset.partId = d.part_id;
      node.dataset.messageId = d.message_id || "";
    }
    node.dataset.lastSeq = ev.seq;
    return node;
  }

  function toolCard(ev, d) {
    let card = byData(".tool-card", "callId", d.call_id);
    if (card) return card;
    card = add(el("details", "tool-card"), ev);
    card.dataset.callId = d.call_id;
    const summary = el("summary");
    summary.append(el("span", "tool-name", d.tool || "tool"), el("span", "tool-title"), el("span", "tool-status"));
    const body = el("div", "tool-body");
    body.append(el("div", "label", "Input"), el("pre", "tool-input"), el("div", "label output-label", "Output"),
      el("pre", "tool-output"), el("pre", "tool-error"));
    card.append(summary, body);
    return card;
  }

  function describeInput(value) {
    if (!value || typeof value !== "object") return value ? String(value) : "";
    for (const key of ["command", "filePath", "path", "pattern", "url", "query", "description"]) {
      if (typeof value[key] === "string") return value[key];
    }
    return "";
  }

  function fillTool(card, d, state) {
    card.dataset.state = state;
    card.querySelector(".tool-title").textContent = d.title || describeInput(d.input);
    card.querySelector(".tool-status").textContent = { running: "running…", done: "done", error: "failed" }[state];
    if (d.input !== undefined) card.querySelector(".tool-input").textContent = clip(d.input);
    const output = card.querySelector(".tool-output");
    output.textContent = d.output === undefined || d.output === null ? "" : clip(d.output);
    output.hidden = card.querySelector(".output-label").hidden = !output.textContent;
    const error = card.querySelector(".tool-error");
    error.textContent = d.error ? clip(d.error) : "";
    error.hidden = !d.error;
  }

  function diffBlock(diff) {
    const pre = el("pre", "diff");
    let adds = 0;
    let dels = 0;
    for (const line of String(diff || "").replace(/\n$/, "").split("\n")) {
      let kind = "ctx";
      if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") || line.startsWith("index ")) {
        kind = "meta";
      } else if (line.startsWith("@@")) kind = "hunk";
      else if (line.startsWith("+")) { kind = "add"; adds += 1; }
      else if (line.startsWith("-")) { kind = "del"; dels += 1; }
      pre.append(el("span", `line ${kind}`, line || " "));
    }
    return { pre, adds, dels };
  }

  // Elements picked on a page with the Chrome extension (sessions/picks.py): each one's component chain, with
  // the source file and line where the build gave them, and the page it was on.
  function pickList(picks) {
    const list = el("ol", "picks");
    for (const pick of picks) {
      if (!pick || typeof pick !== "object") continue;
      const item = el("li", "pick");
      const components = Array.isArray(pick.components) ? pick.components.filter((c) => c && typeof c === "object") : [];
      const chain = el("div", "pick-chain");
      components.forEach((component, index) => {
        if (index) chain.append(" › ");
        const source = component.source && typeof component.source.file === "string"
          ? `${component.source.file}${Number.isInteger(component.source.line) ? `:${component.source.line}` : ""}` : "";
        const name = el("span", "component", component.name || "Anonymous");
        if (source) name.title = source;
        chain.append(name);
        if (source && index === components.length - 1) chain.append(" ", el("code", "source", source));
      });
      if (!components.length) chain.append(el("code", "selector", pick.selector || "an element"));
      item.append(chain, el("div", "pick-page muted", pick.url || ""));
      list.append(item);
    }
    return list;
  }

  const handlers = {
    prompt_queued(ev, d) {
      const node = add(el("div", "prompt"), ev);
      node.dataset.promptId = d.prompt_id;
      node.dataset.state = "queued";
      const head = el("div", "ev-head");
      head.append(el("span", "author", nameOf(d.author)), el("time", "time", timeOf(ev)),
        el("span", "prompt-state", "queued"));
      node.append(head, el("div", "prompt-text", d.text));
      const picks = d.context && Array.isArray(d.context.picks) ? d.context.picks : [];
      if (picks.length) node.append(pickList(picks));
      enqueue(d);
    },
    prompt_sent(ev, d) { dequeue(d.prompt_id); setPromptState(d.prompt_id, "sent"); },
    prompt_started(ev, d) { dequeue(d.prompt_id); setPromptState(d.prompt_id, "running"); },
    prompt_finished(ev, d) { dequeue(d.prompt_id); setPromptState(d.prompt_id, d.status || "done"); },
    prompt_cancelled(ev, d) { dequeue(d.prompt_id); setPromptState(d.prompt_id, "cancelled", d.by); },
    busy(ev, d) { setBusy(true); if (d.prompt_id !== undefined) setPromptState(d.prompt_id, "running"); },
    idle(ev, d) {
      setBusy(false);
      delete stopButton.dataset.sent;
      if (d.prompt_id !== undefined) setPromptState(d.prompt_id, "done");
    },
    stop_requested(ev, d) { note(ev, `Stop requested${d.by ? ` by ${nameOf(d.by)}` : ""}`, "note-stop"); },
    status(ev, d) {
      setStatus(d.status);
      setPhase(d.sandbox_state);
      // The badge always shows the status; the timeline notes only what needs explaining.
      const why = d.reason || d.error;
      if (why || d.status === "failed" || d.status === "archived") {
        note(ev, `Session ${d.status}${why ? `: ${why}` : ""}`, `note-status status-${d.status}`);
      }
    },
    sandbox_phase(ev, d) {
      setPhase(d.state, d.reason);
      const how = d.from_pool ? " (warm pool)" : d.restored_from ? " (restored from a snapshot)" : "";
      const text = `Sandbox ${d.state}${how}${d.reason ? `: ${d.reason}` : ""}`;
      const last = timeline.lastElementChild;
      if (last && last.classList.contains("note-phase")) { // one line per start: provisioning → syncing → ready
        last.textContent = `${last.textContent} → ${d.state}${d.reason ? `: ${d.reason}` : ""}`;
        last.className = `ev note note-phase phase-${d.state}`;
        last.dataset.lastSeq = ev.seq;
      } else note(ev, text, `note-phase phase-${d.state}`);
    },
    sandbox(ev, d) { handlers.sandbox_phase(ev, d); },
    agent_session() {},
    step() {},
    text_delta(ev, d) {
      const node = assistantPart(ev, d);
      if (node.dataset.complete !== "true") node.append(d.delta || "");
    },
    text(ev, d) {
      const node = assistantPart(ev, d);
      node.textContent = d.text || "";
      node.dataset.complete = "true";
    },
    tool_started(ev, d) {
      const card = toolCard(ev, d);
      if (card.dataset.state !== "done" && card.dataset.state !== "error") fillTool(card, d, "running");
    },
    tool_finished(ev, d) { fillTool(toolCard(ev, d), d, d.error ? "error" : "done"); },
    file_edited(ev, d) {
      const node = add(el("details", "file-edit"), ev);
      node.dataset.path = d.path || "";
      const { pre, adds, dels } = diffBlock(d.diff);
      const summary = el("summary");
      summary.append(el("span", "path", d.path), el("span", "adds", `+${adds}`), el("span", "dels", `−${dels}`));
      node.append(summary, pre);
      node.open = adds + dels <= 40;
    },
    title(ev, d) {
      if (!d.title) return;
      title.textContent = d.title;
      document.title = `${d.title} · Inspect`;
    },
    service(ev, d) {
      // Quiet: a burst of service changes is one line, each service once with its latest state.
      let line = timeline.lastElementChild;
      if (!line || !line.classList.contains("note-services")) line = note(ev, "", "note-services");
      let item = [...line.children].find((node) => node.dataset.name === d.name);
      if (!item) item = line.appendChild(el("span", "service-note"));
      item.dataset.name = d.name;
      item.dataset.state = d.state;
      const reason = d.state === "failed" && d.reason ? String(d.reason) : ""; // whole in the tab; a glimpse here
      item.textContent = `${serviceLabel(d.name)} ${d.state}${reason ? `: ${reason.length > 120 ? `${reason.slice(0, 120)}…` : reason}` : ""}`;
      item.title = reason;
      line.dataset.lastSeq = ev.seq;
    },
    screenshot(ev, d) {
      const card = add(el("figure", "screenshot"), ev);
      const url = /^\/[^/\\]/.test(d.url || "") ? d.url : null; // our own artifact paths only
      const link = el("a");
      const image = el("img");
      image.loading = "lazy";
      image.alt = `Screenshot of ${d.source === "desktop" ? "the desktop" : d.source}`;
      if (d.width > 0 && d.height > 0) { image.width = d.width; image.height = d.height; } // no jump when it loads
      if (url) { link.href = image.src = url; link.target = "_blank"; link.rel = "noopener"; }
      link.append(image);
      const caption = el("figcaption");
      caption.append(el("span", "source", d.source === "desktop" ? "Desktop" : d.source),
        el("span", "taken-by", d.taken_by === "agent" ? "taken by the agent" : `taken by ${nameOf(d.taken_by)}`));
      card.append(link, caption);
    },
    screenshot_failed(ev, d) {
      const target = d.target === "desktop" ? "the desktop" : serviceLabel(d.target);
      note(ev, `Screenshot of ${target} failed: ${d.message || "no reason given"}`, "note-error");
    },
    error(ev, d) {
      const node = add(el("div", "event-error"), ev);
      node.setAttribute("role", "alert");
      node.append(el("strong", "name", d.name || "Error"), el("span", "message", d.message || ""));
    },
  };

  function unknown(ev) { note(ev, ev.kind, "note-unknown"); }

  // Kinds other scripts render (pull_request.js: commits and pull requests), registered before this one runs:
  // window.inspectTimelineKinds[kind](ev, data, helpers).
  const helpers = { el, add, note, nameOf };
  for (const [kind, render] of Object.entries(window.inspectTimelineKinds || {})) {
    if (!Object.prototype.hasOwnProperty.call(handlers, kind)) handlers[kind] = (ev, d) => render(ev, d, helpers);
  }

  function apply(seq, ev) {
    shownSeq = seq;
    const handler = Object.prototype.hasOwnProperty.call(handlers, ev.kind) ? handlers[ev.kind] : unknown;
    const data = ev.data && typeof ev.data === "object" ? ev.data : {};
    try {
      handler({ ...ev, seq }, data);
    } catch (error) {
      console.error("could not show event", seq, ev.kind, error); // keep going: one bad event must not stop the stream
    }
    document.dispatchEvent(new CustomEvent("inspect:event", { detail: { seq, ev: { ...ev, seq, data } } })); // workspace.js
    scheduleFlush();
  }

  // Scrolling and storage once per frame, not once per event (a replay can be thousands of deltas).
  function scheduleFlush() {
    if (flushQueued) return;
    flushQueued = true;
    requestAnimationFrame(() => {
      flushQueued = false;
      timeline.dataset.lastSeq = shownSeq;
      try { sessionStorage.setItem(storageKey, String(shownSeq)); } catch (e) { /* private mode */ }
      if (stick) window.scrollTo(0, document.documentElement.scrollHeight);
    });
  }

  window.addEventListener("scroll", () => {
    const doc = document.documentElement;
    stick = window.innerHeight + window.scrollY >= doc.scrollHeight - 120;
  }, { passive: true });

  // --- the stream's other messages ---------------------------------------------------------

  function send(message) { return stream !== null && stream.send(message); }

  function dropped() {
    if (pendingPrompt) {
      pendingPrompt = false;
      showNotice("Connection lost: check the timeline before sending again.", true);
    }
  }

  function receive(msg) {
    document.dispatchEvent(new CustomEvent("inspect:reply", { detail: msg })); // workspace.js
    if (msg.type === "ok" && msg.for === "prompt") {
      pendingPrompt = false;
      input.value = "";
      showNotice("");
      updateComposer();
    } else if (msg.type === "access" && String(msg.can_prompt) !== root.dataset.canPrompt) {
      location.reload(); // their role changed: the page shows what they may do now (the workspace, the prompt box)
    } else if (msg.type === "error") {
      pendingPrompt = false;
      delete stopButton.dataset.sent;
      for (const button of queue.querySelectorAll(".cancel")) button.disabled = false;
      showNotice(msg.message || "Something went wrong.", true);
      updateComposer();
    }
  }

  // --- user actions -----------------------------------------------------------------------

  function submitPrompt() {
    const text = input.value.trim();
    if (!text || pendingPrompt) return;
    if (send({ type: "prompt", text, context: null })) {
      pendingPrompt = true;
      showNotice("Sending…");
      updateComposer();
    }
  }

  $("composer").addEventListener("submit", (event) => { event.preventDefault(); submitPrompt(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submitPrompt(); }
  });
  // Writing shows the others that this person is typing, and starts the session's sandbox again (restoring its
  // snapshot) before the follow-up is sent; the server decides whether one is needed. At most one message per
  // 2 s of writing. A sandbox that ended meanwhile is asked for at once, whatever was sent a moment before.
  let typingSentAt = -Infinity;
  let warmSentAt = -Infinity;
  input.addEventListener("input", () => {
    if (!input.value.trim()) return;
    const now = performance.now();
    const warm = !sandboxStates.alive.includes(phase.dataset.state); // the server then checks at once
    if (now - (warm ? warmSentAt : typingSentAt) < 2000) return;
    if (send({ type: "typing", warm })) {
      typingSentAt = now;
      if (warm) warmSentAt = now;
    }
  });
  queue.addEventListener("click", (event) => {
    const button = event.target.closest(".cancel");
    if (!button) return;
    const id = button.dataset.promptId;
    if (send({ type: "cancel", prompt_id: /^\d+$/.test(id) ? Number(id) : id })) button.disabled = true;
  });
  stopButton.addEventListener("click", () => {
    if (send({ type: "stop" })) stopButton.dataset.sent = "true";
    updateComposer();
  });

  window.inspectSession = { send }; // for workspace.js: its requests share this socket
  setPhase(phase.dataset.state);
  updateComposer();
  stream = window.openSessionStream({
    path: root.dataset.wsPath, onEvent: apply, onMessage: receive, onState: setSocketState, onDropped: dropped,
    hello: { surface: window.matchMedia("(max-width: 700px) and (pointer: coarse)").matches ? "phone" : "web" },
  });
})();
