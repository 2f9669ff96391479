"""Session figures on the live platform (the Daphnes behind the front proxy, a Celery worker, the scripted
model answering at once): submit → first token with a warm sandbox and after a restore, event fan-out to 50
viewers, and 200 sessions streaming at once. See docs/benchmarks.md."""

import asyncio
import os
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.test.utils import override_settings

from bench._common import goal, open_dir, p50, report, say, spread, stopwatch
from bench._fixtures import build, ready_sandbox, register, terminate_all
from bench._git import Origin
from bench._live import (
    Platform,
    Viewer,
    delete_users,
    in_thread,
    make_user,
    opencode_log,
)
from bench._model_hop import model_proxy_hop
from bench._opencode_alone import BareOpenCode
from bench._simulated import SIMULATED_REPO, concurrent, end_simulated, fanout
from sandboxes import provisioning
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from sessions import member_requests
from sessions import tasks as session_tasks
from sessions.models import Event, Prompt, Session

WARM_RUNS = 7
RESTORE_RUNS = 3
TYPING_SECONDS = 3.0  # a short follow-up being written: the first keystroke to the send
POOLED_RUNS = 3
# A pooled sandbox waits minutes for its session; its start (VS Code, desktop) is over by then.
POOL_SETTLE_SECONDS = 20.0
FOLLOW_UP_WARM_SECONDS = 3600  # the product's default (SESSION_FOLLOW_UP_WARM_SECONDS)
PROMPT_TIMEOUT = 180.0
REAL_REPO = "bench-sessions"


class RunFailed(RuntimeError):
    pass


# --- one timed prompt, as a browser sees it ----------------------------------------------------


def sandbox_heartbeat(session_id: int) -> float | None:
    """The session's sandbox's last heartbeat (wall clock): a bridge's hello records one."""
    sandbox = Session.objects.select_related("sandbox").get(pk=session_id).sandbox
    return sandbox.last_heartbeat_at.timestamp() if sandbox and sandbox.last_heartbeat_at else None


async def timed_prompt(platform: Platform, session_id: int, headers: dict, text: str,
                       restoring: bool, typed_for: float = 0.0) -> dict[str, float]:
    """Send a prompt on a subscribed socket and wait for its `idle`. Returns seconds from the send
    to each milestone the socket shows (and the bridge's hello, read from the database).
    `typed_for`: first say `typing`, as the page does at the first keystroke, that long before."""
    after = await in_thread(lambda: Session.objects.get(pk=session_id).last_seq)
    viewer = await Viewer(platform.ws_url, session_id, headers).open(after)
    marks: dict[str, float] = {}
    seen: list[tuple[str, dict]] = []
    try:
        if typed_for:
            await viewer.send({"type": "typing"})
            await asyncio.sleep(typed_for)
        start_wall, start = time.time(), time.monotonic()
        await viewer.send({"type": "prompt", "text": text})
        prompt_id = None
        deadline = start + PROMPT_TIMEOUT
        while True:
            try:
                at, message = await viewer.receive(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise RunFailed(f"no idle within {PROMPT_TIMEOUT:.0f} s; events: {seen[-15:]}") from None
            since = at - start
            if message["type"] == "error":
                raise RunFailed(f"the prompt was refused: {message['message']}")
            if message["type"] == "ok" and message["for"] == "prompt":
                marks["ok"] = since
                prompt_id = message["prompt_id"]
                continue
            if message["type"] != "event":
                continue
            kind, data = message["kind"], message["data"]
            seen.append((kind, {k: str(v)[:60] for k, v in data.items()}))
            if kind == "prompt_queued" and data.get("text") == text:
                prompt_id = data["prompt_id"]
            elif kind == "sandbox_phase" and data.get("state") == State.READY:
                marks.setdefault("sandbox_ready", since)
            elif kind == "prompt_started" and data.get("prompt_id") == prompt_id:
                marks["prompt_started"] = since
                if restoring:  # the heartbeat right after the hello; the next one is 10 s later
                    beat = await in_thread(sandbox_heartbeat, session_id)
                    if beat is not None:
                        marks["bridge_hello"] = beat - start_wall
            elif kind == "text_delta" and "first_token" not in marks:
                marks["first_token"] = since
                marks["_first_token_seq"] = message["seq"]
            elif kind == "status" and data.get("status") == Session.Status.FAILED:
                raise RunFailed(f"the session failed: {data.get('reason')}")
            elif kind == "idle" and data.get("prompt_id") == prompt_id:
                break
    finally:
        await viewer.close()
    if "first_token" not in marks:
        raise RunFailed(f"the run ended without a text_delta; events: {seen[-15:]}")
    marks["_start"], marks["_start_wall"] = start, start_wall
    return marks


def first_line(log: list[tuple[float, str]], prefix: str, after: float = 0.0) -> float | None:
    return next((at for at, message in log if message.startswith(prefix) and at >= after), None)


def measure_prompt(platform: Platform, session_id: int, headers: dict, text: str,
                   restoring: bool = False, typed_for: float = 0.0) -> dict[str, float]:
    """timed_prompt, plus what the model server, the event log and OpenCode's own log say about
    the same run (read while the sandbox still runs)."""
    marks = asyncio.run(timed_prompt(platform, session_id, headers, text, restoring, typed_for))
    start, start_wall = marks.pop("_start"), marks.pop("_start_wall")
    calls = platform.model_calls_since(start)
    if calls:
        marks["model_request"] = calls[0] - start
    stored = Event.objects.get(session_id=session_id, seq=marks.pop("_first_token_seq"))
    marks["first_token_stored"] = stored.created_at.timestamp() - start_wall
    log = opencode_log(Session.objects.select_related("sandbox").get(pk=session_id).sandbox, start_wall)
    if restoring and log:
        marks["opencode_first_log"] = log[0][0]
    for key, prefix in (("opencode_ready", "event connected"), ("opencode_loop", "loop"),
                        ("opencode_llm_call", "stream")):
        found = first_line(log, prefix)
        if found is not None:
            marks[key] = found
    refresh = first_line(log, "project copy refresh started"), first_line(log, "project copy refresh done")
    if None not in refresh:
        marks["opencode_project_refresh"] = refresh[1] - refresh[0]
    return marks


def wait_until_saved(session_id: int, before: str | None, timeout: float = 60) -> None:
    """After a run: wait for its snapshot (taken once the agent is idle) and the sandbox back in
    service, so the next prompt does not queue behind the snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        session = Session.objects.select_related("sandbox").get(pk=session_id)
        if session.status == Session.Status.FAILED:
            raise RunFailed(f"the session failed: {session.error}")
        saved = session.last_snapshot_id is not None and str(session.last_snapshot_id) != str(before)
        if saved and session.sandbox and session.sandbox.state in (State.READY, State.RUNNING):
            return
        if time.monotonic() > deadline:
            raise RunFailed(f"no new snapshot within {timeout:.0f} s after the run")
        time.sleep(0.05)


def wait_until_done(session_id: int, timeout: float = PROMPT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while Prompt.objects.filter(session_id=session_id, status__in=Prompt.OPEN).exists():
        session = Session.objects.get(pk=session_id)
        if session.status == Session.Status.FAILED:
            raise RunFailed(f"the session failed: {session.error}")
        if time.monotonic() > deadline:
            raise RunFailed(f"the first prompt did not finish within {timeout:.0f} s")
        time.sleep(0.1)


def phase_lines(runs: list[dict[str, float]], phases: list[tuple[str, str]], scale: float, unit: str) -> None:
    for key, label in phases:
        values = [r[key] for r in runs if key in r]
        if values:
            say(f"  {label:<58} {spread(values, scale, unit)}")


# --- warm sandbox and restore ------------------------------------------------------------------


def first_token_warm(platform: Platform, session: Session, headers: dict, origin: Origin, root: Path) -> None:
    """Warm prompts through the platform, each paired with the same prompt to OpenCode alone (outside any
    sandbox, straight on the scripted model) just before it: the floor the platform adds its own part to."""
    runs, bare_runs = [], []
    with BareOpenCode(platform.model, origin.path, root) as bare:
        bare.prompt("justtext warm-up")  # OpenCode's first prompt loads its model code: not counted
        for run in range(WARM_RUNS):
            bare_runs.append(bare.prompt(f"justtext warm run {run}"))
            before = Session.objects.get(pk=session.pk).last_snapshot_id
            runs.append(measure_prompt(platform, session.pk, headers, f"justtext warm run {run}"))
            wait_until_saved(session.pk, before)
    firsts = [r["first_token"] for r in runs]
    alone = [r["first_token"] for r in bare_runs]
    report("first_token_warm_p50", p50(firsts) * 1000, "ms", 1)
    report("first_token_opencode_alone_p50", p50(alone) * 1000, "ms", 1)
    report("first_token_warm_overhead_p50", p50([f - a for f, a in zip(firsts, alone, strict=True)]) * 1000, "ms", 1)
    for key in ("ok", "prompt_started", "model_request", "first_token_stored"):
        values = [r[key] for r in runs if key in r]
        if values:
            report(f"first_token_warm_{key}_p50", p50(values) * 1000, "ms", 1)
    say(f"submit → first text_delta on the socket, warm sandbox: {spread(firsts, 1000, 'ms')} over {WARM_RUNS} runs "
        f"(after one warm-up prompt; each run starts once the snapshot after the previous one is taken)")
    say(f"the same prompts to OpenCode alone, each just before: {spread(alone, 1000, 'ms')} (no sandbox, bridge, "
        f"control plane or proxy); the platform's part is the paired difference")
    say("split, from sending {\"type\": \"prompt\"} on the socket (each line: time since the send):")
    phase_lines(runs, [
        ("ok", "`ok` back (prompt stored, queue decided, command sent)"),
        ("prompt_started", "prompt_started on the socket (bridge got the command)"),
        ("opencode_loop", "OpenCode starts its loop (its log)"),
        ("opencode_llm_call", "OpenCode calls the model (its log)"),
        ("model_request", "the request reaches the scripted model (via the proxy)"),
        ("first_token_stored", "first text_delta stored (Event.created_at)"),
        ("first_token", "first text_delta on the socket"),
    ], 1000, "ms")
    say("OpenCode alone, from its prompt_async:")
    phase_lines(bare_runs, [
        ("model_request", "the request reaches the scripted model (straight)"),
        ("first_token", "first text delta on OpenCode's event stream"),
    ], 1000, "ms")
    goal("first token, warm sandbox, p50", p50(firsts) * 1000, "ms", 100)


def let_go_and_follow_up(platform: Platform, session: Session, headers: dict, text: str,
                         typed_for: float = 0.0, keep_warm: bool = False,
                         moving: Origin | None = None) -> dict[str, float]:
    """Let the session's idle sandbox go, then send a follow-up (after `typed_for` s of writing). With
    `keep_warm` the platform keeps a warm sandbox for it, as it does by default, and the follow-up comes
    once that one is ready and settled: a sandbox is let go after 10 minutes idle, so a follow-up comes
    later than that. Without, it finds none. With `moving`, the branch gets a new commit first, so the
    warm sandbox is synced past the snapshot's commit."""
    current = Session.objects.select_related("sandbox").get(pk=session.pk)
    old, snapshot = current.sandbox, current.last_snapshot_id
    if moving is not None:
        moving.new_commit()
    with override_settings(SESSION_IDLE_TIMEOUT_SECONDS=0,
                           SESSION_FOLLOW_UP_WARM_SECONDS=FOLLOW_UP_WARM_SECONDS if keep_warm else 0):
        session_tasks.release_idle_sandboxes()
    old.refresh_from_db()
    if old.state != State.TERMINATED:
        raise RunFailed(f"the idle sandbox was not let go (state {old.state})")
    warm = wait_for_warm_sandbox(session.repo) if keep_warm else None
    if warm is not None and moving is not None and Sandbox.objects.get(pk=warm.pk).synced_commit != moving.head():
        raise RunFailed("the warm sandbox was not synced to the branch's new head")
    marks = measure_prompt(platform, session.pk, headers, text, restoring=True, typed_for=typed_for)
    restored = Session.objects.select_related("sandbox").get(pk=session.pk).sandbox
    if restored is None or str(restored.restored_from_id) != str(snapshot):
        raise RunFailed("the follow-up did not restore the session's last snapshot")
    if warm is not None and restored.pk != warm.pk:
        raise RunFailed("the follow-up did not restore into the sandbox kept warm for it")
    wait_until_saved(session.pk, snapshot)
    return marks


def wait_for_warm_sandbox(repo: Repo) -> Sandbox:
    """The sandbox the platform started for a follow-up once the session's was let go: ready, then left
    for POOL_SETTLE_SECONDS (its OpenCode warms up)."""
    deadline = time.monotonic() + PROMPT_TIMEOUT
    while not (warm := Sandbox.objects.filter(repo=repo, pooled=True, state=State.READY).first()):
        if time.monotonic() > deadline:
            raise RunFailed("no warm sandbox was kept for the follow-up")
        time.sleep(0.1)
    time.sleep(POOL_SETTLE_SECONDS)
    return warm


def restore_while_typing(platform: Platform, session: Session, headers: dict) -> None:
    """The page says `typing` at the first keystroke of a follow-up: the restore starts then."""
    firsts = [let_go_and_follow_up(platform, session, headers, f"justtext typed restore run {run}",
                                   typed_for=TYPING_SECONDS)["first_token"] for run in range(RESTORE_RUNS)]
    report("restore_cold_typed_first_token_p50", p50(firsts), "s", 3)
    say(f"the same, the follow-up written for {TYPING_SECONDS:.0f} s (`typing` at its first keystroke, as the page "
        f"sends it) → first text_delta after the send: {spread(firsts, 1, 's')} over {RESTORE_RUNS} runs")


def restore_cold(platform: Platform, session: Session, headers: dict) -> None:
    """No warm sandbox to restore into (none kept, or the snapshot is on an older image): a new one starts from the
    snapshot, its OpenCode cold."""
    runs = []
    for run in range(RESTORE_RUNS):
        runs.append(let_go_and_follow_up(platform, session, headers, f"justtext cold restore run {run}"))
    firsts = [r["first_token"] for r in runs]
    report("restore_cold_first_token_p50", p50(firsts), "s", 3)
    for key in ("sandbox_ready", "bridge_hello", "opencode_ready", "prompt_started", "model_request"):
        values = [r[key] for r in runs if key in r]
        if values:
            report(f"restore_cold_{key}_p50", p50(values), "s", 3)
    say(f"follow-up after the sandbox was snapshotted and terminated, no warm sandbox to restore into (a new one "
        f"starts from the snapshot) → first text_delta: {spread(firsts, 1, 's')} over {RESTORE_RUNS} runs")
    say("split, from sending the prompt (each line: time since the send):")
    phase_lines(runs, [
        ("ok", "`ok` back (restore queued for the worker)"),
        ("sandbox_ready", "sandbox_phase ready on the socket (restored, bridge launched)"),
        ("bridge_hello", "bridge connected (the heartbeat after its hello)"),
        ("opencode_first_log", "OpenCode's first log line (process up)"),
        ("opencode_ready", "OpenCode serving, the bridge's event stream on (its log)"),
        ("prompt_started", "prompt_started on the socket (session found)"),
        ("opencode_loop", "OpenCode starts its loop (its log)"),
        ("opencode_llm_call", "OpenCode calls the model (its log)"),
        ("model_request", "the request reaches the scripted model"),
        ("first_token", "first text_delta on the socket"),
    ], 1, "s")
    phase_lines(runs, [("opencode_project_refresh", "of which OpenCode's \"project copy refresh\"")], 1, "s")
    goal("first token after a restore into a new sandbox, p50", p50(firsts), "s", 3)


def restore_first_token(platform: Platform, session: Session, headers: dict, origin: Origin) -> None:
    """The product's default: once the session's sandbox is let go, the repo keeps a warm one, and the
    follow-up's snapshot is restored into it, its OpenCode already running."""
    runs, moved = [], []
    try:
        for run in range(RESTORE_RUNS):
            runs.append(let_go_and_follow_up(platform, session, headers, f"justtext restore run {run}",
                                             keep_warm=True))
        for run in range(RESTORE_RUNS):
            moved.append(let_go_and_follow_up(platform, session, headers, f"justtext moved restore run {run}",
                                              keep_warm=True, moving=origin)["first_token"])
    finally:
        Repo.objects.filter(pk=session.repo_id).update(warm_wanted_until=None)  # the later figures keep none
    firsts = [r["first_token"] for r in runs]
    report("restore_first_token_p50", p50(firsts), "s", 3)
    say(f"follow-up after the sandbox was snapshotted and terminated, as the platform runs by default: the sandbox "
        f"it kept warm (ready for {POOL_SETTLE_SECONDS:.0f} s, same image and commit) takes the snapshot → first "
        f"text_delta: {spread(firsts, 1, 's')} over {RESTORE_RUNS} runs")
    phase_lines(runs, [
        ("ok", "`ok` back (warm sandbox claimed, files queued for the worker)"),
        ("prompt_started", "prompt_started on the socket (files in, conversation replayed)"),
        ("model_request", "the request reaches the scripted model"),
        ("first_token", "first text_delta on the socket"),
    ], 1, "s")
    goal("first token after a restore, p50", p50(firsts), "s", 3)
    report("restore_branch_moved_first_token_p50", p50(moved), "s", 3)
    say(f"the same after the branch got a new commit, so the warm sandbox is synced past the snapshot's commit "
        f"(its workspace is reset to it first) → first text_delta: {spread(moved, 1, 's')} over {RESTORE_RUNS} runs")


def first_token_pooled(repo: Repo, owner) -> None:
    """The usual new session: it claims a warm pooled sandbox (OpenCode running and warmed up), and its
    first prompt goes out at once. From create_session to the first text_delta stored."""
    firsts = []
    for run in range(POOLED_RUNS):
        ready_sandbox(repo, pooled=True)
        time.sleep(POOL_SETTLE_SECONDS)
        start = time.time()
        session = member_requests.create_session(repo, owner, f"justtext pooled run {run}")
        if session.sandbox is None or session.sandbox.claimed_at is None:
            raise RunFailed("the new session did not take the pooled sandbox")
        deadline = time.monotonic() + PROMPT_TIMEOUT
        while (first := Event.objects.filter(session=session, kind="text_delta").order_by("seq").first()) is None:
            if time.monotonic() > deadline or Session.objects.get(pk=session.pk).status == Session.Status.FAILED:
                raise RunFailed("the pooled session's first prompt gave no text_delta")
            time.sleep(0.02)
        firsts.append(first.created_at.timestamp() - start)
        wait_until_done(session.pk)
        provisioning.terminate(session.sandbox_id, "benchmark run done")
    report("new_session_pooled_first_token_p50", p50(firsts), "s", 3)
    say(f"a new session on a pooled sandbox ready for {POOL_SETTLE_SECONDS:.0f} s: create_session → first text_delta "
        f"stored {spread(firsts, 1, 's')} over {POOLED_RUNS} runs (OpenCode's first prompt after its start)")


def agent_figures(platform: Platform, root: Path) -> None:
    with stopwatch() as preparing:
        origin = Origin(root / "origin", 10, 64 * 1024)
        repo = register(REAL_REPO, origin)
        build(repo)
    owner = make_user("owner")
    headers = platform.browser_headers(owner)
    with stopwatch() as warming:
        session = member_requests.create_session(repo, owner, "justtext warm-up")
        wait_until_done(session.pk)
        wait_until_saved(session.pk, None)
    say(f"small repo (10 files), image built in {preparing():.1f} s; warm-up, not counted: a sandbox provisioned, "
        f"its bridge and OpenCode started, a first prompt answered and snapshotted in {warming():.1f} s "
        f"(OpenCode's first prompt after it starts takes seconds)")
    first_token_warm(platform, session, headers, origin, root)
    restore_cold(platform, session, headers)
    restore_while_typing(platform, session, headers)
    restore_first_token(platform, session, headers, origin)
    first_token_pooled(repo, owner)


# --- the group ---------------------------------------------------------------------------------


def show_logs() -> None:
    """What went wrong in a live sandbox: its bridge's log (read before the sandbox and its folder go)."""
    for sandbox in Sandbox.objects.filter(repo__name=REAL_REPO, state__in=State.LIVE).exclude(backend_ref=""):
        log = Path(settings.SANDBOX_ROOT) / "sandboxes" / sandbox.backend_ref / "service-bridge.log"
        if log.exists():
            print(f"bridge log of sandbox {sandbox.pk} (tail):\n{log.read_text(errors='replace')[-3000:]}", flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run() -> None:
    root = open_dir(Path(settings.VAR_DIR) / "bench-sessions")
    say(f"load average before: {load_average()} on {os.cpu_count()} cores (the machine may be shared)")
    simulated = Repo.objects.create(name=SIMULATED_REPO, clone_url="file:///nonexistent")
    try:
        with Platform() as platform:
            say(f"{len(platform.lives)} Daphne(s), browsers and bridges at {platform.url}, a Celery worker here, "
                f"the scripted model answering at once; database {settings.DATABASES['default']['ENGINE']}")
            try:
                try:
                    agent_figures(platform, root)
                except BaseException:
                    show_logs()
                    raise
                finally:
                    terminate_all()  # the real sandbox's OpenCode must not take CPU from the socket figures
                model_proxy_hop(platform, simulated)
                fanout(platform, simulated)
                concurrent(platform, simulated)
            except Exception:
                print("daphne log (tail):\n" + "".join(live.log()[-3000:] for live in platform.lives), flush=True)
                raise
        say(f"load average after: {load_average()}")
    finally:
        end_simulated()
        terminate_all()
        Repo.objects.filter(name__in=[REAL_REPO, SIMULATED_REPO]).delete()
        delete_users()
        shutil.rmtree(root, ignore_errors=True)
