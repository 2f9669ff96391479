"""A scripted model provider for tests: OpenAI-compatible (`POST /v1/chat/completions`) and
Anthropic (`POST /v1/messages`) wire formats, streamed like the real ones, answering at once.

What it answers is picked by keywords in the last user message:
  (no tools in the request, i.e. OpenCode's title request) -> a short title
  the last message is a tool result -> final text "Done. <tool output excerpt>"
  "slow"      -> 40 words streamed 0.25 s apart (for stop / queue tests)
  "justtext"  -> plain text, no tool call
  "bash"      -> a bash tool call (`echo hi > bash.txt`)
  "shell:CMD" -> a bash tool call running CMD (the rest of the message, as written): what an agent might run
  "screenshot" -> a call of the bridge's screenshot tool (of the desktop, or of the page "url:X")
  "pullrequest" -> a call of the bridge's create_pull_request tool (a draft titled "Add the greeting file")
  "error500"  -> HTTP 500;  "error401" -> HTTP 401
  otherwise   -> a `write` tool call creating hello.txt, then text
A message containing "file:NAME" writes NAME instead of hello.txt.

`POST /v1/audio/transcriptions` is OpenAI's (multipart: file, model): it checks the bearer key and the model as
OpenAI does and answers `{"text": ...}`, the next of `transcripts` (set by the test). `offers_transcription =
False` makes it a provider without that endpoint (404); `transcription_error = (status, message)` and
`transcription_delay` script a failing or slow one.

Every request (path, headers, body) is kept in `requests` so tests can check what was sent.
"""

import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE = "Scripted session title"
# The file types OpenAI's transcription endpoint takes, by the file name's extension as it tells them.
TRANSCRIPTION_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
LATE_SECONDS = 3.0


def text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def working_directory(messages: list[dict], system: str = "") -> str | None:
    texts = [system] + [text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    for text in texts:
        found = re.search(r"Working directory:\s*(\S+)", text or "")
        if found:
            return found.group(1)
    return None


def plan(messages: list[dict], has_tools: bool, system: str = "") -> tuple[str, object]:
    """What to answer: ("text", str) | ("tool", (name, args)) | ("status", code) | ("slow", str) |
    ("late", str): text after LATE_SECONDS without a byte, as a provider thinking before it answers."""
    if not has_tools:
        return "text", TITLE
    last = messages[-1] if messages else {}
    if last.get("role") == "tool" or (
        isinstance(last.get("content"), list) and any(p.get("type") == "tool_result" for p in last["content"])
    ):
        result = text_of(last.get("content")) or json.dumps(last.get("content"))
        return "text", "Done. The tool said: " + result[:80].replace("\n", " ")
    written = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    user = written.lower()
    if "shell:" in written:
        return "tool", ("bash", {"command": written.split("shell:", 1)[1].strip(), "description": "run a command"})
    if "error500" in user:
        return "status", 500
    if "error401" in user:
        return "status", 401
    if "latefirst" in user:
        return "late", "Thought about it."
    if "slow" in user:
        return "slow", " ".join(f"word{i}" for i in range(40))
    if "screenshot" in user:  # the bridge's custom tool; "url:X" picks a page instead of the desktop
        url = re.search(r"url:(\S+)", user)
        return "tool", ("screenshot", {"url": url.group(1)} if url else {})
    if "pullrequest" in user:
        return "tool", ("create_pull_request", {"title": "Add the greeting file", "body": "It says hello.",
                                                "draft": True})
    if "justtext" in user:
        return "text", "Just some text, no tools here."
    if "bash" in user:
        return "tool", ("bash", {"command": "echo hi > bash.txt && cat bash.txt", "description": "write bash.txt"})
    name = re.search(r"file:(\S+)", user)
    filename = name.group(1) if name else "hello.txt"
    folder = working_directory(messages, system)
    path = f"{folder}/{filename}" if folder else filename
    return "tool", ("write", {"filePath": path, "content": "Hello from the scripted model!\n"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ScriptedModelServer"

    def log_message(self, *args) -> None:
        pass

    def send_json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            models = [{"id": "scripted", "object": "model", "owned_by": "tests"}]
            self.send_json(200, {"object": "list", "data": models})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/audio/transcriptions"):
            if self.server.offers_transcription:
                return self.transcription(raw)
            self.server.record(self.path, dict(self.headers), {})
            return self.send_json(404, {"error": {"message": "404 page not found"}})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.send_json(400, {"error": {"message": "invalid JSON"}})
        self.server.record(self.path, dict(self.headers), body)
        if self.path.endswith("/chat/completions"):
            return self.openai(body)
        if self.path.endswith("/messages"):
            return self.anthropic(body)
        self.send_json(404, {"error": {"message": "not found"}})

    # --- OpenAI audio transcriptions ----------------------------------------------

    def openai_error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        self.send_json(status, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                          "code": code}})

    def transcription(self, raw: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        form: dict[str, dict] = {}
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                form[str(name)] = {"filename": part.get_filename(), "content_type": part.get_content_type(),
                                   "data": part.get_payload(decode=True) or b""}
        upload = form.get("file", {})
        model = (form.get("model") or {}).get("data", b"").decode()
        self.server.record(self.path, dict(self.headers), {
            "model": model, "filename": upload.get("filename"), "content_type": upload.get("content_type"),
            "size": len(upload.get("data", b"")), "fields": sorted(form)})
        server = self.server
        presented = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if server.transcription_key is not None and presented != server.transcription_key:
            # OpenAI names the key it was given; the control plane must not pass that on.
            return self.openai_error(401, f"Incorrect API key provided: {presented}.", "invalid_api_key")
        if not upload.get("filename"):
            return self.openai_error(400, "You must provide a file with a filename (multipart 'file').", param="file")
        if model not in server.transcription_models:
            return self.openai_error(400, f"Invalid model {model!r}: it does not transcribe audio.", param="model")
        if upload["filename"].rpartition(".")[2].lower() not in TRANSCRIPTION_FORMATS:
            return self.openai_error(400, f"Invalid file format. Supported formats: {list(TRANSCRIPTION_FORMATS)}",
                                     param="file")
        if server.transcription_delay:
            time.sleep(server.transcription_delay)
        if server.transcription_error:
            status, text = server.transcription_error
            return self.send_json(status, {"error": {"message": text, "type": "server_error"}})
        with server._lock:
            text = server.transcripts.pop(0) if server.transcripts else "scripted transcript"
        self.send_json(200, {"text": text})

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, data: dict | str, event: str | None = None) -> None:
        payload = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {event}\n" if event else ""
        self.wfile.write(f"{prefix}data: {payload}\n\n".encode())
        self.wfile.flush()

    # --- OpenAI chat completions ------------------------------------------------

    def openai(self, body: dict) -> None:
        kind, value = plan(body.get("messages", []), bool(body.get("tools")))
        if kind == "late":
            time.sleep(LATE_SECONDS)
        if kind == "status":
            return self.send_json(value, {"error": {"message": f"scripted error {value}", "type": "server_error"}})
        if not body.get("stream"):
            text = value if kind in ("text", "slow", "late") else ""
            return self.send_json(200, {
                "id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            })
        self.start_stream()

        def chunk(delta: dict, finish: str | None = None) -> None:
            self.sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": body.get("model"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        try:
            chunk({"role": "assistant", "content": ""})
            if kind == "tool":
                name, args = value
                call_id = f"call_{self.server.next_id()}"
                chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
                encoded = json.dumps(args)
                for i in range(0, len(encoded), 40):
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": encoded[i:i + 40]}}]})
                chunk({}, "tool_calls")
            else:
                words = value.split(" ")
                for i, word in enumerate(words):
                    chunk({"content": word + (" " if i < len(words) - 1 else "")})
                    if kind == "slow":
                        time.sleep(0.25)
                chunk({}, "stop")
            self.sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                      "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
            self.sse("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            self.server.record("disconnected", {}, {})

    # --- Anthropic messages ----------------------------------------------------

    def anthropic(self, body: dict) -> None:
        system = body.get("system")
        system_text = system if isinstance(system, str) else text_of(system)
        kind, value = plan(body.get("messages", []), bool(body.get("tools")), system_text)
        if kind == "status":
            error_type = "authentication_error" if value == 401 else "api_error"
            return self.send_json(value, {"type": "error", "error": {"type": error_type, "message": "scripted"}})
        model = body.get("model")
        if not body.get("stream"):
            text = value if kind in ("text", "slow", "late") else ""
            return self.send_json(200, {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "output_tokens": 5},
            })
        self.start_stream()
        try:
            self.sse({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "usage": {"input_tokens": 100, "output_tokens": 1}}}, "message_start")
            if kind == "tool":
                name, args = value
                self.sse({"type": "content_block_start", "index": 0, "content_block": {
                    "type": "tool_use", "id": f"toolu_{self.server.next_id()}", "name": name, "input": {}}},
                    "content_block_start")
                self.sse({"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(args)}}, "content_block_delta")
                stop = "tool_use"
            else:
                self.sse({"type": "content_block_start", "index": 0,
                          "content_block": {"type": "text", "text": ""}}, "content_block_start")
                words = value.split(" ")
                for i, word in enumerate(words):
                    self.sse({"type": "content_block_delta", "index": 0, "delta": {
                        "type": "text_delta", "text": word + (" " if i < len(words) - 1 else "")}},
                        "content_block_delta")
                    if kind == "slow":
                        time.sleep(0.25)
                stop = "end_turn"
            self.sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            self.sse({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 10}},
                     "message_delta")
            self.sse({"type": "message_stop"}, "message_stop")
        except (BrokenPipeError, ConnectionResetError):
            self.server.record("disconnected", {}, {})


class ScriptedModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0):
        super().__init__(("127.0.0.1", port), Handler)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._ids = 0
        self._thread: threading.Thread | None = None
        # The audio transcription endpoint: what it answers, and what it checks (None: any key).
        self.offers_transcription = True
        self.transcripts: list[str] = []
        self.transcription_key: str | None = None
        self.transcription_models = {"whisper-1"}
        self.transcription_error: tuple[int, str] | None = None
        self.transcription_delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, path: str, headers: dict, body: dict) -> None:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body, "at": time.monotonic()})

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def start(self) -> "ScriptedModelServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


if __name__ == "__main__":
    import sys

    server = ScriptedModelServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(server.url, flush=True)
    server.serve_forever()
