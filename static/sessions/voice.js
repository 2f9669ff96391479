// The microphone button beside a prompt box (templates/dictation/voice_button.html, docs/voice.md). It only
// ever writes into the box: the person reads what was heard and presses Send themselves.
//   - The browser's speech recognition where it has one: interim words in a grey line, final words at the cursor.
//   - Else, when the control plane has a transcription service: a recording, POSTed to it, its text at the cursor.
//   - Else the button says voice input is unavailable, and why.
(function () {
  "use strict";
  const root = document.getElementById("voice");
  if (!root) return;
  const box = document.getElementById(root.dataset.target);
  const button = document.getElementById("voice-button");
  const label = button.querySelector(".voice-label");
  const interim = document.getElementById("voice-interim");
  const status = document.getElementById("voice-status");
  const maxSeconds = Number(root.dataset.maxSeconds) || 120;
  const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
  const canRecord = Boolean(window.isSecureContext && navigator.mediaDevices?.getUserMedia && window.MediaRecorder);
  const mode = Recognition ? "speech" : (root.dataset.server === "true" && canRecord ? "record" : "none");
  const UNAVAILABLE = root.dataset.server === "true" && !window.isSecureContext
    ? "Voice input needs the page served over HTTPS."
    : "Voice input needs a browser with speech recognition, or a transcription service on the server.";
  root.dataset.mode = mode;

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function setLabel(text, active) {
    label.textContent = text;
    button.setAttribute("aria-pressed", active ? "true" : "false");
    root.dataset.state = active ? (mode === "record" ? "recording" : "listening") : "idle";
  }

  // Final words go in at the cursor (replacing a selection), a space apart from what is around them; the
  // input event tells the page's own scripts (warming a sandbox, the typing signal) as typing would.
  function insert(text) {
    text = text.trim();
    if (!text || !box) return;
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? start;
    const before = box.value.slice(0, start);
    const after = box.value.slice(end);
    const lead = before && !/\s$/.test(before) ? " " : "";
    const trail = after && !/^\s/.test(after) ? " " : "";
    box.setRangeText(lead + text + trail, start, end, "end");
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  if (mode === "none") {
    button.setAttribute("aria-disabled", "true");
    button.title = UNAVAILABLE;
    setLabel("Voice unavailable", false);
    button.addEventListener("click", () => say(UNAVAILABLE, true));
    return;
  }

  // --- the browser's speech recognition -------------------------------------------------------------
  const SPEECH_ERRORS = {
    "not-allowed": "The microphone was refused: allow it in the browser's site settings, then try again.",
    "service-not-allowed": "The browser's speech recognition is turned off here.",
    "audio-capture": "No microphone was found.",
    "no-speech": "No speech was heard. Try again.",
    "network": "The browser's speech recognition needs a network connection.",
    "language-not-supported": "The browser's speech recognition does not know this language.",
  };
  let recognition = null;

  function startListening() {
    recognition = new Recognition();
    recognition.continuous = true;
    recognition.interimResults = true;
    recognition.lang = document.documentElement.lang || navigator.language || "en-US";
    recognition.onresult = (event) => {
      let pending = "";
      for (let i = event.resultIndex; i < event.results.length; i++) {
        const result = event.results[i];
        if (result.isFinal) insert(result[0].transcript);
        else pending += result[0].transcript;
      }
      interim.textContent = pending.trim();
    };
    recognition.onerror = (event) => {
      if (event.error !== "aborted") say(SPEECH_ERRORS[event.error] || `Speech recognition failed (${event.error}).`, true);
    };
    recognition.onend = () => {
      recognition = null;
      interim.textContent = "";
      setLabel("Dictate", false);
    };
    say("Listening… press again to stop.");
    setLabel("Stop", true);
    try {
      recognition.start();
    } catch (error) {
      recognition = null;
      setLabel("Dictate", false);
      say(`Speech recognition could not start: ${error.message}`, true);
    }
  }

  // --- a recording, transcribed by the control plane -------------------------------------------------
  const TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/mp4", "audio/ogg;codecs=opus"];
  let recorder = null;
  let timer = null;

  function clock(seconds) {
    return `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  }

  async function startRecording() {
    let stream;
    button.disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      button.disabled = false;
      const refused = error.name === "NotAllowedError" || error.name === "SecurityError";
      say(refused ? "The microphone was refused: allow it in the browser's site settings, then try again."
        : error.name === "NotFoundError" ? "No microphone was found." : `The microphone could not start: ${error.message}`, true);
      return;
    }
    button.disabled = false;
    const mimeType = TYPES.find((type) => MediaRecorder.isTypeSupported(type));
    recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
    const chunks = [];
    const startedAt = performance.now();
    recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
    recorder.onstop = () => {
      clearInterval(timer);
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      setLabel("Dictate", false);
      upload(new Blob(chunks, { type: chunks[0]?.type || mimeType || "audio/webm" }));
    };
    recorder.start(1000);
    const tick = () => {
      const seconds = (performance.now() - startedAt) / 1000;
      setLabel(`Stop ${clock(seconds)}`, true);
      if (seconds >= maxSeconds && recorder?.state === "recording") recorder.stop();
    };
    tick();
    timer = setInterval(tick, 250);
    say(`Recording (at most ${clock(maxSeconds)})… press again to stop.`);
  }

  async function upload(blob) {
    if (!blob.size) {
      say("Nothing was recorded. Try again.", true);
      return;
    }
    const body = new FormData();
    const extension = blob.type.includes("mp4") ? "mp4" : blob.type.includes("ogg") ? "ogg" : "webm";
    body.append("audio", blob, `dictation.${extension}`);
    const csrf = root.querySelector("[name=csrfmiddlewaretoken]").value;
    button.disabled = true;
    root.dataset.state = "transcribing";
    say("Transcribing…");
    try {
      const response = await fetch(root.dataset.transcribeUrl, {
        method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      });
      const answer = (response.headers.get("content-type") || "").includes("application/json")
        ? await response.json() : {};
      if (!response.ok || typeof answer.text !== "string") {
        say(answer.error || `The recording could not be transcribed (${response.status}): reload the page and try again.`, true);
      } else if (!answer.text) {
        say("Nothing was heard in the recording.", true);
      } else {
        insert(answer.text);
        say("Transcribed: check it, then press Send.");
      }
    } catch (error) {
      say("The control plane could not be reached: check the connection and try again.", true);
    } finally {
      button.disabled = false;
      root.dataset.state = "idle";
    }
  }

  button.addEventListener("click", () => {
    say("");
    if (mode === "speech") {
      if (recognition) recognition.stop(); // the final words still arrive, then onend
      else startListening();
    } else if (recorder) {
      recorder.stop();
    } else {
      startRecording();
    }
  });
})();
