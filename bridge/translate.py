"""OpenCode's events (`GET /event`) turned into the project's event kinds (docs/bridge-protocol.md).

Only sessions the bridge runs prompts in are forwarded. Sub-agent sessions they start (the `task`
tool) are tracked so that their permission requests get answered, but their events are not sent.
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .files import FileTracker

DEFAULT_TITLE = "New session - "
ABORTED = "MessageAbortedError"
MAX_CHARS = 200_000
STACK_LINE = re.compile(r"^\s+at .*$\n?", re.MULTILINE)
ERROR_PREFIX = re.compile(r"^[A-Za-z]*Error: ")


@dataclass
class SessionState:
    id: str
    prompts: list[str] = field(default_factory=list)  # prompts started and not yet idle, oldest first
    busy_sent: set[str] = field(default_factory=set)
    prompt_at: float = 0.0  # monotonic time of the last prompt_started
    busy_at: float | None = None  # OpenCode said busy since the last prompt
    error_at: float | None = None  # a session.error (or a stop) since the last prompt
    title: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    part_types: dict[str, str] = field(default_factory=dict)
    tools_started: set[str] = field(default_factory=set)
    tools_finished: set[str] = field(default_factory=set)
    texts_done: set[str] = field(default_factory=set)
    errors: set[tuple[str, str]] = field(default_factory=set)

    def start_prompt(self, prompt_id: str) -> None:
        if not self.prompts:
            self.busy_at = self.error_at = None
            self.errors.clear()
        self.prompts.append(prompt_id)
        self.prompt_at = time.monotonic()

    def finish(self) -> list[dict]:
        """idle for every prompt that was running; forget the run's bookkeeping."""
        events = [{"kind": "idle", "prompt_id": p} for p in self.prompts]
        self.prompts.clear()
        self.busy_sent.clear()
        self.busy_at = self.error_at = None
        for bookkeeping in (self.roles, self.part_types, self.tools_started, self.tools_finished, self.texts_done):
            bookkeeping.clear()
        return events


class Translator:
    def __init__(self, workspace: Path):
        self.sessions: dict[str, SessionState] = {}
        self.children: dict[str, str] = {}  # sub-agent session -> the session that started it
        self.files = FileTracker(workspace)

    def track(self, session_id: str) -> SessionState:
        if session_id not in self.sessions:
            self.sessions[session_id] = SessionState(session_id)
        return self.sessions[session_id]

    def owns(self, session_id: str | None) -> bool:
        return session_id in self.sessions or session_id in self.children

    @property
    def busy(self) -> bool:
        return any(state.prompts for state in self.sessions.values())

    def handle(self, event: dict) -> list[dict]:
        kind = event.get("type", "")
        props = event.get("properties") or {}
        session_id = props.get("sessionID")
        if kind == "session.created":
            info = props.get("info") or {}
            if self.owns(info.get("parentID")):
                self.children[info.get("id") or session_id] = info["parentID"]
            return []
        state = self.sessions.get(session_id)
        if state is None:
            return []
        handler = {
            "session.status": self._session_status,
            "session.idle": self._session_idle,
            "session.updated": self._session_updated,
            "session.error": self._session_error,
            "message.updated": self._message_updated,
            "message.part.delta": self._message_part_delta,
            "message.part.updated": self._message_part_updated,
        }.get(kind)
        return handler(state, props) if handler else []

    # --- sessions --------------------------------------------------------------

    def _session_status(self, state: SessionState, props: dict) -> list[dict]:
        status = props.get("status") or {}
        if status.get("type") == "busy":
            state.busy_at = time.monotonic()
            fresh = [p for p in state.prompts if p not in state.busy_sent]
            state.busy_sent.update(fresh)
            return [{"kind": "busy", "prompt_id": p} for p in fresh]
        if status.get("type") == "idle":
            return self._session_idle(state, props)
        if status.get("type") == "retry":
            return [{"kind": "retry", "attempt": status.get("attempt"), "message": status.get("message")}]
        return []

    def _session_idle(self, state: SessionState, props: dict) -> list[dict]:
        # OpenCode says idle twice (session.status and session.idle): a late copy from the last run
        # must not end a prompt that has only just started. A run OpenCode never started is ended
        # by the watchdog.
        return state.finish() if state.busy_at is not None else []

    def _session_updated(self, state: SessionState, props: dict) -> list[dict]:
        title = (props.get("info") or {}).get("title")
        if not title or title.startswith(DEFAULT_TITLE) or title == state.title:
            return []
        state.title = title
        return [{"kind": "title", "title": title}]

    def _session_error(self, state: SessionState, props: dict) -> list[dict]:
        error = props.get("error") or {}
        state.error_at = time.monotonic()
        name = error.get("name") or "Error"
        message = str((error.get("data") or {}).get("message") or error.get("message") or name)
        message = STACK_LINE.sub("", message).strip()  # some copies carry a stack trace
        key = (name, ERROR_PREFIX.sub("", message.split("\n", 1)[0])[:200])
        if name == ABORTED or key in state.errors:  # a stop is no failure; OpenCode repeats some errors
            return []
        state.errors.add(key)
        return [{"kind": "error", "name": name, "message": ERROR_PREFIX.sub("", message, count=1)}]

    # --- messages and parts ----------------------------------------------------

    def _message_updated(self, state: SessionState, props: dict) -> list[dict]:
        info = props.get("info") or {}
        if info.get("id") and info.get("role"):
            state.roles[info["id"]] = info["role"]
        return []

    def _message_part_delta(self, state: SessionState, props: dict) -> list[dict]:
        part_id, message_id = props.get("partID"), props.get("messageID")
        if props.get("field") != "text" or state.roles.get(message_id) == "user":
            return []
        if state.part_types.get(part_id, "text") != "text" or not props.get("delta"):
            return []
        return [{"kind": "text_delta", "message_id": message_id, "part_id": part_id, "delta": props["delta"]}]

    def _message_part_updated(self, state: SessionState, props: dict) -> list[dict]:
        part = props.get("part") or {}
        part_type = part.get("type")
        if part.get("id"):
            state.part_types[part["id"]] = part_type
        if part_type == "text":
            return self._text(state, part)
        if part_type == "tool":
            return self._tool(state, part)
        if part_type == "step-start":
            return [{"kind": "step", "phase": "start", "reason": None, "tokens": None}]
        if part_type == "step-finish":
            return [{"kind": "step", "phase": "finish", "reason": part.get("reason"), "tokens": part.get("tokens")}]
        return []

    def _text(self, state: SessionState, part: dict) -> list[dict]:
        role = state.roles.get(part.get("messageID"))
        if role == "user" or (role is None and "time" not in part) or part.get("synthetic"):
            return []
        if not (part.get("time") or {}).get("end") or part.get("id") in state.texts_done:
            return []
        state.texts_done.add(part["id"])
        return [{"kind": "text", "message_id": part.get("messageID"), "part_id": part["id"],
                 "text": part.get("text") or ""}]

    def _tool(self, state: SessionState, part: dict) -> list[dict]:
        tool_state = part.get("state") or {}
        status = tool_state.get("status")
        call_id = part.get("callID") or part.get("id")
        tool = part.get("tool")
        tool_input = tool_state.get("input") or {}
        events: list[dict] = []
        if status in ("running", "completed", "error") and call_id not in state.tools_started:
            state.tools_started.add(call_id)
            self.files.started(call_id, tool, tool_input)
            events.append({"kind": "tool_started", "call_id": call_id, "tool": tool, "input": clip(tool_input)})
        if status in ("completed", "error") and call_id not in state.tools_finished:
            state.tools_finished.add(call_id)
            events.append({
                "kind": "tool_finished", "call_id": call_id, "tool": tool, "input": clip(tool_input),
                "output": clip(tool_state.get("output")),
                "error": clip(tool_state.get("error")) if status == "error" else None,
                "title": tool_state.get("title"),
            })
            events += [{**e, "diff": clip(e["diff"])} for e in self.files.finished(call_id)]
        return events


def clip(value: object) -> object:
    """Long strings (a tool's output, a written file's content, a diff) cut to MAX_CHARS."""
    if isinstance(value, str) and len(value) > MAX_CHARS:
        return value[:MAX_CHARS] + f"\n[... {len(value) - MAX_CHARS} more characters not shown]"
    if isinstance(value, dict):
        return {k: clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clip(v) for v in value]
    return value
