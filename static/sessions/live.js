// A session's live event stream over its WebSocket: every event exactly once, in seq order, across
// reconnects.
//
// Every event carries a per-session sequence number. The stream keeps the last one it handed over;
// each (re)connect subscribes with it and the server sends exactly the missing events, then live
// ones. Events at or below it are dropped, so nothing is handed over twice. Seqs have no holes, so an
// event past the next one waits (live fan-out may overtake) and, if the missing one does not come
// soon, the stream reconnects and resubscribes from its last seq. A dropped socket is reconnected
// with backoff (at once when the browser is back online or the tab visible again); a silent one is
// noticed by a ping without answer.
//
// openSessionStream({path, onEvent(seq, ev), onMessage(msg), onState(state, text), onDropped(), hello})
// returns {send(message) -> bool, isOpen(), lastSeq()}. session.js is its one user. `hello`: fields every
// subscribe carries besides `after` (the surface the person watches from, for presence).
(function () {
  "use strict";

  window.openSessionStream = function ({ path, onEvent, onMessage, onState, onDropped, hello }) {
    let lastSeq = 0;
    const early = new Map(); // events that arrived before the one right after lastSeq, by seq
    let gapTimer = null;
    let gapAt = null; // lastSeq when the previous resync for a gap happened
    let socket = null;
    let attempt = 0;
    let retryTimer = null;
    let pingTimer = null;
    let pongTimer = null;

    function url() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${path}`;
    }

    function isOpen() { return socket !== null && socket.readyState === WebSocket.OPEN; }

    function send(message) {
      if (!isOpen()) return false;
      socket.send(JSON.stringify(message));
      return true;
    }

    function receiveEvent(ev) {
      const seq = Number(ev.seq);
      if (!Number.isInteger(seq) || seq <= lastSeq) return; // already handed over: a replay overlapping live events
      if (seq > lastSeq + 1 && gapAt !== lastSeq) { // a gap: wait for the missing events
        early.set(seq, ev);
        if (!gapTimer) gapTimer = setTimeout(resyncGap, 2000);
        return;
      }
      handOver(seq, ev);
      while (early.has(lastSeq + 1)) {
        const next = early.get(lastSeq + 1);
        early.delete(lastSeq + 1);
        handOver(lastSeq + 1, next);
      }
      if (!early.size) { clearTimeout(gapTimer); gapTimer = null; }
    }

    function handOver(seq, ev) {
      lastSeq = seq;
      onEvent(seq, ev);
    }

    // The gap did not fill: reconnect and resubscribe from lastSeq. Should the very same gap come back
    // (the server lost the events), hand over what follows it rather than loop.
    function resyncGap() {
      gapTimer = null;
      gapAt = lastSeq;
      early.clear();
      console.warn("events missing after seq", lastSeq, ": resubscribing");
      dropped(1000, 0);
    }

    function connect() {
      clearTimeout(retryTimer);
      retryTimer = null;
      if (socket) return;
      onState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
      const ws = new WebSocket(url());
      socket = ws;
      ws.onopen = () => {
        if (ws !== socket) return;
        attempt = 0;
        ws.send(JSON.stringify({ ...(hello || {}), type: "subscribe", after: lastSeq }));
        onState("connected");
        startPing();
      };
      ws.onmessage = (message) => {
        if (ws !== socket) return;
        clearTimeout(pongTimer); // anything from the server shows the socket is alive
        let msg;
        try { msg = JSON.parse(message.data); } catch (e) { return; }
        if (!msg || typeof msg !== "object") return;
        if (msg.type === "event") receiveEvent(msg);
        else onMessage(msg);
      };
      ws.onclose = (event) => { if (ws === socket) dropped(event.code); };
    }

    function dropped(code, retryDelay) {
      if (socket) {
        socket.onclose = socket.onmessage = socket.onopen = null;
        try { socket.close(); } catch (e) { /* already closed */ }
      }
      socket = null;
      clearInterval(pingTimer);
      clearTimeout(pongTimer);
      onDropped();
      if (code === 4403 || code === 4404) { // the server says we may not watch this session (any more)
        onState("closed", "no access");
        return;
      }
      early.clear(); // the resubscription sends them again
      clearTimeout(gapTimer);
      gapTimer = null;
      attempt += 1;
      const delay = retryDelay ?? Math.min(15000, 500 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
      onState("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
      retryTimer = setTimeout(connect, delay);
    }

    function startPing() {
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        if (!send({ type: "ping" })) return;
        clearTimeout(pongTimer);
        pongTimer = setTimeout(() => dropped(), 10000); // no answer: a dead connection the browser has not noticed
      }, 25000);
    }

    // Back online or back to the tab: do not wait out the backoff.
    function reconnectNow() { if (!socket && retryTimer) connect(); }
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) reconnectNow(); });

    connect();
    return { send, isOpen, lastSeq: () => lastSeq };
  };
})();
