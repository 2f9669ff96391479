// The session page's workspace: tabs for VS Code, the sandbox's desktop and the app's preview.
//
// session.js owns the socket and the timeline. It dispatches "inspect:event" on document for every
// event it applies (a page load replays the log from seq 0) and "inspect:reply" for every other
// message, and exposes window.inspectSession.send. Each workspace service reports its state in
// `service` events; the latest one per name wins. Nothing is loaded before its tab is visible, nor
// before its service is ready, except VS Code: its frame loads (out of sight) while it starts, since
// the proxy answers its page early and holds its requests until it is up (ide/workbench_page.py).
// A new start (a restart) loads it again.
(function () {
  "use strict";
  const box = document.getElementById("workspace");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  // "/sessions/<id>/open": `${opener}/<service>/` sends a frame or a tab to the service on the session's own
  // host with a fresh ticket (ide/workspace_hosts.py); nothing a sandbox serves runs on this page's origin.
  const opener = box.dataset.opener;
  const viewerModules = JSON.parse(document.getElementById("viewer-modules").textContent); // noVNC's files
  const wide = window.matchMedia("(min-width: 1024px)");
  const toggle = $("workspace-toggle");
  const tabs = [...box.querySelectorAll('[role="tab"]')];
  const ideFrame = $("ide-frame");
  const previewFrame = $("preview-frame");
  const portPicker = $("preview-port");
  const screen = $("desktop-screen");
  const connection = $("desktop-connection");

  // name -> {state, reason, seq}: the server's view at render time, then every event applied.
  const services = new Map(Object.entries(JSON.parse($("initial-services").textContent)));
  let selected = "ide";
  let port = ""; // the chosen preview port
  let portChosen = false; // by the user: new ports then do not take over
  let ideRun = stateOf("ide").seq; // seq of the event that began VS Code's current run (a "starting")
  let ideLoaded = ideFrame.getAttribute("src") ? ideRun : null; // the run the frame was loaded for
  let ideLoadedAt = 0; // when the frame was loaded, if that was before VS Code was ready
  let previewLoaded = ""; // "<port>:<seq>" the preview frame loaded for
  let rfb = null;
  let desktopReady = 0; // seq of the "ready" the last desktop connection was for: one automatic try per "ready"
  let renderQueued = false;
  const pending = {}; // action -> its button, while the server has not answered

  const phase = $("sandbox-phase"); // session.js keeps its data-state: the sandbox's state
  const { sandboxStates } = window.inspectNames; // names.js
  const BEFORE_REPORT = -1; // ideLoaded: the frame loaded while the sandbox started, before VS Code's first report
  const STATE_TEXT = { unknown: "not started", starting: "starting…", ready: "ready", failed: "failed", stopped: "stopped" };

  function stateOf(name) {
    return services.get(name) || { state: "unknown", reason: "", seq: 0 };
  }

  function previewPorts() {
    const ports = [];
    for (const name of services.keys()) {
      const match = /^preview-(\d+)$/.exec(name);
      if (match) ports.push(match[1]);
    }
    return ports.sort((a, b) => Number(a) - Number(b));
  }

  function visible(pane) {
    return selected === pane && (wide.matches || box.dataset.open === "true");
  }

  // --- events from session.js ------------------------------------------------------------

  document.addEventListener("inspect:event", (event) => {
    const ev = event.detail.ev;
    if (ev.kind === "screenshot") settle("screenshot", "Screenshot added to the timeline.");
    if (ev.kind === "screenshot_failed") settle("screenshot", `No screenshot: ${ev.data.message || "it failed"}`, true);
    if (["sandbox_phase", "sandbox", "status"].includes(ev.kind)) scheduleRender(); // VS Code may load early
    if (ev.kind !== "service" || typeof ev.data.name !== "string") return;
    const d = ev.data;
    if (event.detail.seq <= stateOf(d.name).seq) return; // replayed: the page was rendered with a later state
    const state = STATE_TEXT[d.state] ? d.state : "unknown";
    // A new run of VS Code begins with any ide event but those that go on from "starting".
    const goesOn = stateOf("ide").state === "starting" && (state === "starting" || state === "ready");
    if (d.name === "ide" && !goesOn) {
      ideRun = event.detail.seq;
      if (ideLoaded === BEFORE_REPORT && state === "starting") { // the frame asked in time: its page comes now
        ideLoaded = ideRun;
        ideLoadedAt = performance.now();
      }
    }
    services.set(d.name, { state, reason: d.reason || "", seq: event.detail.seq });
    if (pending[`restart:${d.name}`]) settle(`restart:${d.name}`);
    scheduleRender(); // a replay brings many: render once per frame, so frames load once
  });

  document.addEventListener("inspect:reply", (event) => {
    const msg = event.detail;
    // A screenshot's "ok" only means the sandbox was asked: its button waits for the screenshot event.
    if (msg.type === "ok" && msg.for === "restart_service") {
      for (const key of Object.keys(pending)) if (key.startsWith("restart:")) settle(key, "Restarting…");
    } else if (msg.type === "error") {
      // Errors name no request: any pending one failed. session.js shows the message under the prompt
      // box; repeat it next to the button, which may be far from there on a phone.
      for (const key of Object.keys(pending)) settle(key, msg.message || "Something went wrong.", true);
    }
  });

  function request(key, button, message) {
    const session = window.inspectSession;
    if (!session || !session.send(message)) {
      paneNote(button, "Not connected: try again in a moment.", true);
      return;
    }
    pending[key] = button;
    button.disabled = true;
    button.dataset.pending = "true";
    paneNote(button, key === "screenshot" ? "Taking a screenshot…" : "");
    setTimeout(() => { if (pending[key] === button) settle(key, ""); }, 30000); // no answer: let them try again
  }

  function settle(key, text, isError) {
    const button = pending[key];
    if (!button) return;
    delete pending[key];
    delete button.dataset.pending;
    if (text !== undefined) paneNote(button, text, isError);
    scheduleRender(); // re-enables the button if it still applies
  }

  function paneNote(button, text, isError) {
    const note = button.closest(".pane").querySelector(".pane-note");
    note.textContent = text || "";
    note.classList.toggle("error", Boolean(isError));
    clearTimeout(note.clearTimer);
    if (text && !isError) note.clearTimer = setTimeout(() => { note.textContent = ""; }, 6000);
  }

  // --- rendering ----------------------------------------------------------------------------

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function render() {
    choosePort();
    const previewName = port ? `preview-${port}` : "";
    $("tab-ide").dataset.state = stateOf("ide").state;
    $("tab-desktop").dataset.state = stateOf("desktop").state;
    $("tab-preview").dataset.state = previewName ? stateOf(previewName).state : "unknown";
    renderIde();
    renderDesktop();
    renderPreview();
  }

  // The status chip in the pane's bar, and the message shown instead of the frame until it is ready.
  function showService(pane, name, messages) {
    const { state, reason } = name ? stateOf(name) : { state: "unknown", reason: "" };
    const chip = pane.querySelector(".svc-state");
    chip.dataset.state = state;
    chip.textContent = name ? STATE_TEXT[state] : "no preview";
    const message = pane.querySelector(".pane-message");
    message.dataset.state = state;
    message.querySelector(".message-title").textContent = messages[state] || "";
    message.querySelector(".message-reason").textContent = state === "failed" ? reason : "";
    const restart = message.querySelector(".restart");
    restart.hidden = !(name && state === "failed");
    restart.dataset.restart = name;
    restart.disabled = Boolean(pending[`restart:${name}`]);
    return state;
  }

  function renderIde() {
    const pane = $("pane-ide");
    const state = showService(pane, "ide", {
      unknown: "VS Code starts with the sandbox.",
      starting: "VS Code is starting…",
      failed: "VS Code could not start.",
      stopped: "VS Code stopped. It starts again with the sandbox.",
    });
    const ready = state === "ready";
    pane.querySelector(".pane-message").hidden = ready;
    $("ide-open").hidden = !ready;
    // A sandbox starting will soon report VS Code starting: the proxy holds the page until then.
    const early = state === "starting" || (state === "unknown" && sandboxStates.starting.includes(phase.dataset.state));
    // VS Code gives up on a server it cannot reach after five tries (~15 s of the proxy holding them):
    // a frame loaded that long before the server was ready starts again.
    const stale = ready && ideLoadedAt && performance.now() - ideLoadedAt > 12000;
    const loaded = ideLoaded === ideRun || (ideLoaded === BEFORE_REPORT && state === "unknown");
    if ((ready || early) && visible("ide") && (!loaded || stale)) {
      ideLoaded = state === "unknown" ? BEFORE_REPORT : ideRun;
      ideLoadedAt = ready ? 0 : performance.now();
      ideFrame.src = `${opener}/ide/`;
    }
    if (ready) ideLoadedAt = 0;
    if (ideLoaded === BEFORE_REPORT && state === "unknown" && !early) { // that start ended (or was an old one replayed)
      ideLoaded = null;
      ideFrame.src = "about:blank";
    }
    ideFrame.hidden = !(ready || ideLoaded === ideRun || ideLoaded === BEFORE_REPORT);
    ideFrame.dataset.early = String(!ready); // laid out at full size, out of sight, until VS Code is ready
  }

  function choosePort() {
    const ports = previewPorts();
    if (!portChosen || !ports.includes(port)) {
      // Not chosen by the user: the first ready port, else the first one seen.
      port = ports.find((p) => stateOf(`preview-${p}`).state === "ready") || ports[0] || "";
    }
  }

  function renderPreview() {
    const pane = $("pane-preview");
    fillPortPicker(previewPorts());
    const name = port ? `preview-${port}` : "";
    const state = showService(pane, name, {
      unknown: "No preview yet. When the agent starts the app's dev server, its port shows up here.",
      starting: `The preview on port ${port} is starting…`,
      failed: `The preview on port ${port} failed.`,
      stopped: `The preview on port ${port} stopped.`,
    });
    const ready = state === "ready";
    const url = `${opener}/preview-${port}/`;
    pane.querySelector(".pane-message").hidden = ready;
    previewFrame.hidden = !ready;
    $("preview-reload").disabled = !ready;
    $("preview-open").hidden = !ready;
    $("preview-open").href = url;
    $("preview-screenshot").disabled = !ready || Boolean(pending.screenshot);
    const key = `${port}:${stateOf(name).seq}`;
    if (ready && visible("preview") && previewLoaded !== key) {
      previewLoaded = key;
      previewFrame.src = url;
    }
  }

  function fillPortPicker(ports) {
    const wanted = ports.map((p) => `${p}:${stateOf(`preview-${p}`).state}`).join(",");
    if (portPicker.dataset.filled !== wanted) {
      portPicker.dataset.filled = wanted;
      portPicker.replaceChildren(...(ports.length ? ports : [""]).map((p) => {
        const option = document.createElement("option");
        option.value = p;
        if (!p) {
          option.textContent = "none yet";
          return option;
        }
        const { state } = stateOf(`preview-${p}`);
        option.textContent = state === "ready" ? p : `${p} (${STATE_TEXT[state]})`;
        option.dataset.service = `preview-${p}`; // one element per preview service, for tests
        option.dataset.state = state;
        return option;
      }));
    }
    portPicker.value = port;
    portPicker.disabled = ports.length === 0;
  }

  // --- the desktop (noVNC) ----------------------------------------------------------------

  function renderDesktop() {
    const pane = $("pane-desktop");
    const state = showService(pane, "desktop", {
      unknown: "The desktop starts with the sandbox.",
      starting: "The desktop is starting…",
      failed: "The desktop could not start.",
      stopped: "The desktop stopped. It starts again with the sandbox.",
    });
    const ready = state === "ready";
    const seq = stateOf("desktop").seq;
    if (ready) ideSettled.then(() => { loadViewer(); desktopAddress(); }); // so opening the tab only connects
    if (!ready && rfb) {
      const client = rfb;
      rfb = null;
      client.disconnect();
    }
    if (ready && visible("desktop") && screen.dataset.state === "disconnected" && desktopReady !== seq) {
      desktopReady = seq;
      connectDesktop();
    }
    // The screen stays laid out while connecting (noVNC measures it); the message covers it until connected.
    const link = screen.dataset.state;
    const message = pane.querySelector(".pane-message");
    message.hidden = ready && link === "connected";
    if (ready && link !== "connected") {
      message.querySelector(".message-title").textContent = link === "connecting" ? "Connecting to the desktop…"
        : desktopReady ? "Disconnected from the desktop." : "Open this tab to connect to the desktop.";
    }
    screen.hidden = !ready;
    $("desktop-reconnect").hidden = !(ready && link === "disconnected");
    $("desktop-screenshot").disabled = !ready || Boolean(pending.screenshot);
  }

  function setConnection(state, text) {
    screen.dataset.state = state;
    connection.dataset.state = state;
    connection.textContent = text || state;
    scheduleRender();
  }

  // noVNC's files wait for VS Code's first load (or 4 s): both at once slow the tab people see first.
  const ideSettled = new Promise((resolve) => {
    ideFrame.addEventListener("load", resolve, { once: true });
    setTimeout(resolve, 4000);
  });
  let viewer = null;
  function loadViewer() {
    // Once the desktop is ready, not before: most sandboxes' pages never show a desktop.
    if (!viewer) {
      // Every module at once: import() alone would find them one level of imports at a time.
      for (const href of viewerModules) {
        const link = document.createElement("link");
        link.rel = "modulepreload";
        link.href = href;
        document.head.append(link);
      }
      viewer = import(box.dataset.novnc).then((module) => module.default);
    }
    return viewer;
  }

  // The desktop socket's address on the session's host, with a single-use ticket (good for a minute): asked
  // for once the desktop is ready, so a click connects at once; `take` uses it up (and asks again if stale).
  let desktopTicket = null; // {promise, at}
  const TICKET_FRESH_MS = 45000;
  function desktopAddress(take = false) {
    if (!desktopTicket || performance.now() - desktopTicket.at > TICKET_FRESH_MS) {
      const promise = fetch(`${opener}/desktop/?socket=1`, { credentials: "same-origin" }).then(async (answer) => {
        if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
        return (await answer.json()).url;
      });
      promise.catch(() => { // an early ask that failed is asked again at the click
        if (desktopTicket && desktopTicket.promise === promise) desktopTicket = null;
      });
      desktopTicket = { promise, at: performance.now() };
    }
    const { promise } = desktopTicket;
    if (take) desktopTicket = null;
    return promise;
  }

  async function connectDesktop() {
    setConnection("connecting", "connecting…");
    let RFB;
    try {
      RFB = await loadViewer();
    } catch (error) {
      viewer = null;
      console.error("could not load noVNC", error);
      setConnection("disconnected", "could not load the viewer");
      return;
    }
    let url;
    try {
      url = await desktopAddress(true);
    } catch (error) {
      console.error("could not get the desktop's address", error);
      setConnection("disconnected", "could not reach the desktop");
      return;
    }
    const client = new RFB(screen, url);
    client.scaleViewport = true;
    client.resizeSession = false;
    client.background = "#1d2330";
    client.addEventListener("connect", () => setConnection("connected"));
    client.addEventListener("disconnect", () => {
      if (rfb === client) rfb = null;
      setConnection("disconnected");
    });
    client.addEventListener("credentialsrequired", () => {
      client.disconnect(); // the sandbox's VNC server has no password; this is not our desktop
    });
    rfb = client;
  }

  $("desktop-reconnect").addEventListener("click", () => {
    if (screen.dataset.state !== "disconnected") return;
    desktopReady = stateOf("desktop").seq;
    connectDesktop();
  });

  // --- tabs, the phone toggle and the buttons -------------------------------------------------

  function select(pane, focus) {
    selected = pane;
    for (const tab of tabs) {
      const on = tab.dataset.pane === pane;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`pane-${tab.dataset.pane}`).hidden = !on;
      if (on && focus) tab.focus();
    }
    render();
  }

  for (const tab of tabs) tab.addEventListener("click", () => select(tab.dataset.pane));
  $("workspace-tabs").addEventListener("keydown", (event) => { // arrow keys move between tabs (ARIA tabs pattern)
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const index = tabs.findIndex((tab) => tab.dataset.pane === selected);
    const step = moves[event.key];
    const next = Number.isFinite(step) ? (index + step + tabs.length) % tabs.length : step < 0 ? 0 : tabs.length - 1;
    select(tabs[next].dataset.pane, true);
  });

  toggle.addEventListener("click", () => {
    const open = box.dataset.open !== "true";
    box.dataset.open = String(open);
    toggle.setAttribute("aria-expanded", String(open));
    render();
    if (open) box.scrollIntoView({ behavior: "smooth", block: "start" });
  });
  wide.addEventListener("change", render); // a phone turned sideways, a window resized

  portPicker.addEventListener("change", () => {
    port = portPicker.value;
    portChosen = true;
    render();
  });

  $("preview-reload").addEventListener("click", () => {
    // The frame is on the session's own host (another origin): this page can only load it again, from the
    // preview's start; the proxy makes the browser revalidate pages that say nothing of caching.
    previewFrame.src = `${opener}/preview-${port}/`;
  });

  $("desktop-screenshot").addEventListener("click", (event) => {
    request("screenshot", event.currentTarget, { type: "screenshot", target: "desktop" });
  });
  $("preview-screenshot").addEventListener("click", (event) => {
    if (port) request("screenshot", event.currentTarget, { type: "screenshot", target: `preview-${port}` });
  });
  box.addEventListener("click", (event) => {
    const button = event.target.closest(".restart");
    if (!button || !button.dataset.restart) return;
    const name = button.dataset.restart;
    request(`restart:${name}`, button, { type: "restart_service", name });
  });

  render();
})();
