"""Commands from the control plane carried out on OpenCode, and OpenCode's events sent back."""

import asyncio
import logging
import re
import shutil
import sqlite3
import time
from collections import OrderedDict

from . import branch, history, pull_request_tool, screenshot
from .config import SESSION_RULES, BridgeConfig
from .opencode import OpenCodeServer
from .outbox import Outbox
from .protocol import (
    BRIDGE_VERSION,
    COMMAND_NAMES,
    OPENCODE_VERSION,
    RESTORE_DIR,
    RESTORE_DONE,
    RESTORE_RESUMED,
    CommandResult,
    CommitEvent,
    CommitSpec,
    Hello,
    PlainCommand,
    PromptCommand,
    PullRequestAsked,
    RestartServiceCommand,
    ScreenshotCommand,
    StopCommand,
)
from .translate import SessionState, Translator
from .workspace import Workspace

log = logging.getLogger("bridge.agent")
SESSION_ID = re.compile(r"ses_[A-Za-z0-9]{1,64}")
# Events that say OpenCode's first run got past its start-up (it reached the model, or ended).
STARTED_KINDS = frozenset({"step", "text_delta", "text", "tool_started", "idle", "error"})


class CommandError(Exception):
    pass


def title_of(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (line[:77] + "...") if len(line) > 80 else (line or "Session")


def checked_commit_spec(spec: object) -> CommitSpec | None:
    """A prompt's `commit` as the protocol has it, or None for none; CommandError for anything else."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("branch"), str) or not spec["branch"]:
        raise CommandError("a prompt's commit needs a branch")
    author, co_authors, message = spec.get("author"), spec.get("co_authors"), spec.get("message")
    if not isinstance(author, dict) or not isinstance(author.get("name"), str) \
            or not isinstance(author.get("email"), str):
        raise CommandError("a prompt's commit needs an author with a name and an email")
    if not isinstance(co_authors, list) or not all(isinstance(p, dict) for p in co_authors):
        raise CommandError("a prompt's commit's co_authors must be a list of {name, email}")
    if not isinstance(message, str) or not message.strip():
        raise CommandError("a prompt's commit needs a non-empty message")
    return {"branch": spec["branch"], "author": author, "co_authors": co_authors, "message": message}


def checkpoint(db) -> None:
    """Fold OpenCode's SQLite write-ahead log into the database file, so a copy of the files is whole."""
    if not db.exists():
        return
    connection = sqlite3.connect(db, timeout=5)
    try:
        for _ in range(20):
            if connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                return
            time.sleep(0.1)
        log.warning("the OpenCode database stayed busy; its write-ahead log was not truncated")
    finally:
        connection.close()


class Agent:
    no_busy_timeout = 120.0  # a prompt OpenCode never started (no busy, no idle) is given up after this
    check_interval = 15.0  # how often a busy session's status is checked against OpenCode's
    restore_timeout = 120.0  # how long `resume` waits for the control plane to copy a snapshot's files in

    def __init__(self, config: BridgeConfig, outbox: Outbox):
        self.config = config
        self.outbox = outbox
        self.synced = config.synced
        self.translator = Translator(config.workspace)
        # OpenCode's start-up is over: its first run reached the model (or ended), or it was warmed up
        # with nothing waiting. A restored sandbox starts its services only then (see Workspace).
        self.started = asyncio.Event()
        self.server = OpenCodeServer(config, self.on_opencode_event, lambda: not self.running, self.started.set)
        self.workspace = Workspace(config, self.emit, self.started)
        self.ready = asyncio.Event()  # OpenCode is up and its event stream connected
        self.done = asyncio.Event()
        self.commands: asyncio.Queue[dict] = asyncio.Queue()
        self.results: OrderedDict[object, CommandResult] = OrderedDict()
        # The prompts taken so far (newest last, a bounded few): the control plane sends a prompt again when it
        # heard nothing of it, which must not run it twice.
        self.prompts_taken: OrderedDict[object, None] = OrderedDict()
        self.running: set[object] = set()
        self.held: dict[str, str] = {}  # permission request id -> session id, until sync_done
        self.checked: dict[str, float] = {}
        self.tasks: set[asyncio.Task] = set()
        # What each running prompt's run commits when it ends (cmd_prompt), and the pull request its agent asked for.
        self.commit_specs: dict[object, CommitSpec] = {}
        self.pull_requests_asked: dict[object, dict] = {}
        self.current_prompt: object = None

    def emit(self, event: dict) -> None:
        self.outbox.add_event(event)
        if event.get("kind") in STARTED_KINDS:
            self.started.set()

    def hello(self) -> Hello:
        return {"type": "hello", "bridge_version": BRIDGE_VERSION,
                "opencode_version": self.server.version or OPENCODE_VERSION, "synced": self.synced}

    # --- commands ----------------------------------------------------------------

    def on_command(self, message: dict) -> None:
        command_id = message.get("command_id")
        if command_id in self.results:  # sent again after a reconnect: answer again, do not redo it
            self.outbox.add_message(self.results[command_id])
        elif command_id not in self.running:
            self.running.add(command_id)
            self.commands.put_nowait(message)

    async def work(self) -> None:
        while True:
            message = await self.commands.get()
            command_id = message.get("command_id")
            result: CommandResult
            try:
                name = message.get("name")
                if name not in COMMAND_NAMES:  # bridge/protocol.py: one cmd_<name> method for each
                    raise CommandError(f"unknown command {name!r}")
                await getattr(self, f"cmd_{name}")(message)
                result = {"type": "command_result", "command_id": command_id, "ok": True, "error": None}
            except Exception as e:
                log.warning("command %s (%s) failed: %s", command_id, message.get("name"), e)
                result = {"type": "command_result", "command_id": command_id, "ok": False, "error": str(e)}
            self.running.discard(command_id)
            self.results[command_id] = result
            while len(self.results) > 500:
                self.results.popitem(last=False)
            self.outbox.add_message(result)
            if message.get("name") == "shutdown" and result["ok"]:
                self.done.set()

    async def wait_ready(self, timeout: float = 120) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            raise CommandError("OpenCode is not running") from None

    async def cmd_prompt(self, command: PromptCommand) -> None:
        prompt_id, text, model = command.get("prompt_id"), command.get("text"), command.get("model")
        if prompt_id is None or not isinstance(text, str) or not text.strip():
            raise CommandError("a prompt needs a prompt_id and a text")
        if prompt_id in self.prompts_taken:
            log.info("prompt %s was sent again; it runs once", prompt_id)
            return
        spec = checked_commit_spec(command.get("commit"))
        self.prompts_taken[prompt_id] = None
        while len(self.prompts_taken) > 500:
            self.prompts_taken.popitem(last=False)
        try:
            session_id = await self.session_for(command.get("opencode_session_id"), text)
        except BaseException:
            self.prompts_taken.pop(prompt_id, None)  # it never started: the control plane's resend may try again
            raise
        state = self.translator.track(session_id)
        if spec is not None:
            self.commit_specs[prompt_id] = spec
        self.current_prompt = prompt_id
        state.start_prompt(prompt_id)
        self.emit({"kind": "prompt_started", "prompt_id": prompt_id})
        body: dict = {"parts": [{"type": "text", "text": text}]}
        if isinstance(model, dict) and model.get("providerID") and model.get("modelID"):
            body["model"] = {"providerID": model["providerID"], "modelID": model["modelID"]}
        try:
            await self.server.request("POST", f"/session/{session_id}/prompt_async", body)
        except Exception as e:
            if prompt_id in state.prompts:
                state.prompts.remove(prompt_id)
            self.commit_specs.pop(prompt_id, None)  # it never ran: nothing to commit at its idle below
            self.emit({"kind": "error", "name": "PromptFailed", "message": str(e)})
            self.emit({"kind": "idle", "prompt_id": prompt_id})
            raise

    async def session_for(self, session_id: object, text: str) -> str:
        """The OpenCode session a prompt runs in, once OpenCode is up: the one named, or a new one (announced)."""
        await self.wait_ready()
        if session_id is not None and not (isinstance(session_id, str) and SESSION_ID.fullmatch(session_id)):
            raise CommandError(f"invalid opencode_session_id {session_id!r}")
        if session_id and session_id not in self.translator.sessions:  # e.g. restored from a snapshot
            if not await self.server.has_session(session_id):
                log.warning("OpenCode has no session %s; starting a new one", session_id)
                session_id = None
        if not session_id:
            title = title_of(text)  # with a title, OpenCode makes no title request to the model
            created = await self.server.request("POST", "/session", {"title": title, "permission": SESSION_RULES})
            session_id = created["id"]
            self.translator.track(session_id).title = title
            self.emit({"kind": "agent_session", "opencode_session_id": session_id})
            self.emit({"kind": "title", "title": title})
        return str(session_id)

    async def cmd_stop(self, command: StopCommand) -> None:
        wanted = command.get("opencode_session_id")  # only compared with the sessions it runs
        for state in list(self.translator.sessions.values()):
            if state.prompts and (not wanted or state.id == wanted):
                self.drop_held(state.id)
                state.error_at = time.monotonic()  # the watchdog makes sure idle follows
                await self.server.request("POST", f"/session/{state.id}/abort")

    async def cmd_sync_done(self, command: PlainCommand) -> None:
        self.synced = True
        self.workspace.synced.set()
        held, self.held = self.held, {}
        for request_id in held:
            await self.allow(request_id)

    async def cmd_prepare_snapshot(self, command: PlainCommand) -> None:
        if self.translator.busy:
            raise CommandError("a run is in progress")
        await asyncio.to_thread(checkpoint, self.config.opencode_data / "opencode.db")

    async def cmd_resume(self, command: PlainCommand) -> None:
        """A snapshot is being restored into this running sandbox (it was pooled). Once the control plane
        has copied its files in, the sessions of the snapshot's OpenCode are replayed into the running
        one, so the prompts after this command go on with the same conversation."""
        aside = self.config.home / RESTORE_DIR
        done = self.config.home / RESTORE_DONE
        if (self.config.home / RESTORE_RESUMED).exists():
            return  # sent again after a reconnect
        deadline = time.monotonic() + self.restore_timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise CommandError("the snapshot's files did not arrive")
            await asyncio.sleep(0.02)
        await self.wait_ready()
        try:
            histories = await asyncio.to_thread(history.read_histories, aside / "opencode.db")
            for events in histories:
                session_id = events[0]["aggregateID"]
                if await self.server.has_session(session_id):
                    continue
                body = {"directory": str(self.config.workspace), "events": events}
                await self.server.request("POST", "/sync/replay", body, timeout=60)
            log.info("resumed %d OpenCode session(s) from the snapshot", len(histories))
        except history.HistoryError as e:
            raise CommandError(str(e)) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, aside, True)
            aside.mkdir()
            (self.config.home / RESTORE_RESUMED).write_text("resumed\n")

    async def cmd_shutdown(self, command: PlainCommand) -> None:
        await self.server.stop()
        await self.workspace.stop()

    async def cmd_claimed(self, command: PlainCommand) -> None:
        """A session took this sandbox from the pool: the dev servers that waited for it start."""
        self.workspace.claimed.set()

    async def cmd_restart_service(self, command: RestartServiceCommand) -> None:
        try:
            self.workspace.restart(str(command.get("service")))
        except ValueError as e:
            raise CommandError(str(e)) from None

    async def cmd_screenshot(self, command: ScreenshotCommand) -> None:
        taken_by = command.get("taken_by")
        taken_by = taken_by if isinstance(taken_by, str) and taken_by else "someone"
        target = str(command.get("target") or "desktop")
        try:
            await self.workspace.screenshot(target, taken_by)
        except screenshot.ScreenshotError as e:
            # Whoever asked is watching the page, not the bridge's log.
            self.emit({"kind": "screenshot_failed", "target": target, "taken_by": taken_by, "message": str(e)})
            raise CommandError(str(e)) from None

    # --- the end of a run: its commit, then its idle ----------------------------------

    async def end_run(self, idle: dict, rest: list[dict]) -> None:
        """A prompt's run ended: commit what it changed and hand the branch over, pass on the agent's request for
        a pull request, then say `idle` (and what came after it). The control plane snapshots the sandbox and
        sends the next prompt only once it hears `idle`, so neither meets a commit half done."""
        prompt_id = idle.get("prompt_id")
        spec = self.commit_specs.pop(prompt_id, None)
        asked = self.pull_requests_asked.pop(prompt_id, None)
        if spec is not None:
            try:
                await self.commit_run(prompt_id, spec)
            except Exception as e:  # whatever went wrong, the run still ends: idle must follow
                log.warning("the run of prompt %s was not committed: %s", prompt_id, e)
                self.emit({"kind": "error", "name": "CommitFailed", "message": f"The changes were not committed: {e}"})
            if asked is not None:
                request: PullRequestAsked = {"kind": "pull_request_asked", "prompt_id": prompt_id, **asked}
                self.emit(dict(request))
        self.emit(idle)
        self.send(rest)

    async def commit_run(self, prompt_id: object, spec: CommitSpec) -> None:
        """Commit the workspace's changes on the session's branch and hand the branch to the control plane. A
        failed hand-off is said in the commit's event, not raised: the next commit's push sends this one too."""
        workspace = self.config.workspace
        made = await asyncio.to_thread(branch.commit_changes, workspace, spec["branch"], spec["author"],
                                       spec["co_authors"], spec["message"])
        if made is None:
            return
        url = branch.handoff_url(self.config.control_plane_url)
        handed_off, error = await asyncio.to_thread(branch.hand_off, workspace, url, made.branch, made.sha,
                                                    self.config.token)
        if not handed_off:
            log.warning("commit %s was not handed off: %s", made.sha, error)
        event: CommitEvent = {
            "kind": "commit", "prompt_id": prompt_id, "sha": made.sha, "branch": made.branch, "author": made.author,
            "co_authors": made.co_authors, "message": made.message, "files": made.files,
            "more_files": made.more_files, "handed_off": handed_off, "handoff_error": error,
        }
        self.emit(dict(event))

    # --- OpenCode's events ----------------------------------------------------------

    def on_opencode_event(self, event: dict) -> None:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind == "bridge.stream":
            if event.get("generation") == self.server.generation:
                (self.ready.set if event["connected"] else self.ready.clear)()
        elif kind == "bridge.exited":
            self.ready.clear()
            self.held.clear()
            self.translator.files.forget()
            self.emit({"kind": "error", "name": "OpenCodeExited",
                       "message": f"OpenCode stopped (exit code {event.get('code')}); restarting it"})
            for state in self.translator.sessions.values():
                self.send(state.finish())
        elif kind == "permission.asked" and self.translator.owns(props.get("sessionID")):
            if self.synced:
                self.spawn(self.allow(props.get("id")))
            else:
                self.held[props.get("id")] = props.get("sessionID")
        elif kind == "permission.replied":
            self.held.pop(props.get("requestID"), None)
        elif kind == "question.asked" and self.translator.owns(props.get("sessionID")):
            self.spawn(self.call("POST", f"/question/{props.get('id')}/reject"))
        else:
            events = self.translator.handle(event)
            for translated in events:
                asked = pull_request_tool.asked(translated)
                if asked is not None and self.current_prompt in self.commit_specs:  # its run has not ended
                    self.pull_requests_asked[self.current_prompt] = asked
            self.send(events)
            if any(e["kind"] == "idle" for e in events):
                self.drop_held(props.get("sessionID"))

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def send(self, events: list[dict]) -> None:
        """Emit OpenCode's translated events, in order; a run's `idle` (and what follows it) once its commit is
        made (end_run)."""
        for index, event in enumerate(events):
            if event.get("kind") == "idle" and event.get("prompt_id") in self.commit_specs:
                self.spawn(self.end_run(event, events[index + 1:]))
                return
            if event.get("kind") == "idle":
                self.pull_requests_asked.pop(event.get("prompt_id"), None)
            self.emit(event)

    def drop_held(self, session_id: str | None) -> None:
        """OpenCode keeps a stale request after an abort; answering it later would do nothing."""
        related = {session_id} | {c for c, parent in self.translator.children.items() if parent == session_id}
        self.held = {r: s for r, s in self.held.items() if s not in related}

    async def allow(self, request_id: str | None) -> None:
        # `once`: an `always` answer would allow that pattern for every session of the process
        await self.call("POST", f"/permission/{request_id}/reply", {"reply": "once"})

    async def call(self, method: str, path: str, body: object = None) -> None:
        try:
            await self.server.request(method, path, body)
        except Exception as e:
            log.warning("%s %s failed: %s", method, path, e)

    # --- watchdog: OpenCode does not always say idle (some errors, a lost stream) -------

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(1)
            try:
                await self.check_sessions()
            except Exception as e:
                log.info("watchdog: %s", e)

    def check_due(self, state: SessionState, now: float) -> bool:
        if now - self.checked.get(state.id, 0) < 2:
            return False
        if state.error_at is not None or not self.ready.is_set():
            return state.error_at is not None and now - state.error_at > 1
        if state.busy_at is not None:
            return now - self.checked.get(state.id, state.busy_at) > self.check_interval
        return now - state.prompt_at > self.no_busy_timeout

    async def check_sessions(self) -> None:
        now = time.monotonic()
        due = [s for s in self.translator.sessions.values() if s.prompts and self.check_due(s, now)]
        if not due or not self.server.alive:
            return
        asked = time.monotonic()
        status = await self.server.request("GET", "/session/status", timeout=10)
        for state in due:
            self.checked[state.id] = time.monotonic()
            if ((status or {}).get(state.id) or {}).get("type", "idle") != "idle" or not state.prompts:
                continue
            if state.prompt_at > asked:  # a prompt started meanwhile: OpenCode's answer is stale
                continue
            log.warning("session %s is no longer busy but OpenCode sent no idle", state.id)
            if state.busy_at is None and state.error_at is None:
                self.emit({"kind": "error", "name": "NoResponse", "message": "OpenCode did not start the run"})
            self.drop_held(state.id)
            self.send(state.finish())
