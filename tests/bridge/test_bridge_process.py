"""The bridge as a process: the real OpenCode server, the scripted model server, a fake control plane.

One synced bridge (and so one OpenCode) serves most of the module; a test that needs a bridge as it
first starts, or ends one, starts its own (`new_bridge`). Each test stands alone, in any order: one that
continues a conversation asks for the `conversation` fixture, which holds it. The bridge runs on the host
here, with the same environment variables a sandbox gives it; npm's registry is made unreachable for
OpenCode, as in a sandbox, so a missing pre-installed plugin package would show as a ~72 s stall. The fake
control plane and the bridge process are in harness.py.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from bridge.protocol import EVENT_KINDS, OPENCODE_VERSION, RESTORE_DIR, RESTORE_DONE
from sandboxes.tools import tools_dir
from tests.bridge.harness import TOKEN, Bridge, FakeControlPlane, bridge_env, opencode_pid, start_bridge
from tests.support.model_server import ScriptedModelServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox

@pytest.fixture(scope="module")
def tools() -> Path:
    call_command("install_sandbox_tools")
    root = tools_dir()
    sys.path.insert(0, str(root / "python"))  # websockets, for the fake control plane
    return root


@pytest.fixture(scope="module")
def model():
    server = ScriptedModelServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def control_plane(tools):
    server = FakeControlPlane(TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bridge(tools, model, control_plane, tmp_path_factory):
    """The module's bridge, told its workspace is synced (so writes go ahead)."""
    process = start_bridge(control_plane, model, tools, tmp_path_factory.mktemp("bridge"))
    assert control_plane.wait_result(control_plane.command("sync_done"))["ok"] is True
    yield process
    process.stop()
    print(process.output()[-3000:])


@pytest.fixture(scope="module")
def conversation(bridge, control_plane) -> str:
    """An OpenCode session on the module's bridge in which the agent wrote hello.txt; its id."""
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=1, text="Please create the greeting file", author="Ada", model=None,
                          opencode_session_id=None)
    control_plane.wait_event("idle", mark, timeout=60, prompt_id=1)
    assert (bridge.workspace / "hello.txt").read_text() == "Hello from the scripted model!\n"
    return control_plane.wait_event("agent_session", mark)["opencode_session_id"]


@pytest.fixture
def new_bridge(tools, tmp_path):
    """A bridge of this test's own, as it first starts (not synced), with its own control plane and model."""
    model, control_plane = ScriptedModelServer().start(), FakeControlPlane(TOKEN)
    process = start_bridge(control_plane, model, tools, tmp_path)
    yield process
    process.stop()
    control_plane.stop()
    model.stop()
    print(process.output()[-3000:])


# --- the bridge end to end -------------------------------------------------------------------


def test_hello_then_heartbeats(new_bridge):
    control_plane = new_bridge.control_plane
    hello = control_plane.wait_for(lambda _n, m: m.get("type") == "hello")
    assert hello["opencode_version"] == OPENCODE_VERSION and hello["bridge_version"] and hello["synced"] is False
    first = control_plane.wait_for(lambda _n, m: m.get("type") == "heartbeat")
    mark = control_plane.mark()
    later = control_plane.wait_for(lambda _n, m: m.get("type") == "heartbeat", mark, timeout=5)
    assert first["busy"] is False and later["busy"] is False


def test_opencode_is_warmed_up_before_the_first_prompt_without_calling_the_model(new_bridge):
    try:
        eventually(lambda: "OpenCode warmed up" in new_bridge.output(), timeout=60, interval=0.1)
    except AssertionError:
        raise AssertionError(new_bridge.output()[-3000:]) from None
    assert "warming OpenCode up failed" not in new_bridge.output()
    assert new_bridge.model.requests == []  # warming spends no tokens


def test_a_write_waits_for_sync_done_then_the_run_completes(new_bridge):
    bridge, control_plane, model = new_bridge, new_bridge.control_plane, new_bridge.model
    mark = control_plane.mark()
    prompt = control_plane.command("prompt", prompt_id=1, text="Please create the greeting file", author="Ada",
                                   model=None, opencode_session_id=None)
    started = control_plane.wait_event("tool_started", mark, timeout=60)
    target = bridge.workspace / "hello.txt"
    assert started["tool"] == "write" and started["input"]["filePath"] == str(target)
    time.sleep(1.5)  # the write waits for the bridge's permission answer, held until sync_done
    assert not target.exists()
    assert "tool_finished" not in [e["kind"] for e in control_plane.events(mark)]
    assert control_plane.wait_result(prompt)["ok"] is True

    sync = control_plane.command("sync_done")
    assert control_plane.wait_result(sync)["ok"] is True
    idle = control_plane.wait_event("idle", mark, timeout=30)
    assert idle["prompt_id"] == 1
    assert target.read_text() == "Hello from the scripted model!\n"

    events = control_plane.events(mark)
    kinds = [e["kind"] for e in events]
    assert set(kinds) <= EVENT_KINDS  # bridge/protocol.py lists every kind the bridge sends
    order = ["agent_session", "prompt_started", "busy", "tool_started", "tool_finished", "file_edited", "text", "idle"]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order), kinds
    by_kind = {e["kind"]: e for e in events}
    session_id = by_kind["agent_session"]["opencode_session_id"]
    assert session_id.startswith("ses_")
    finished = by_kind["tool_finished"]
    assert finished["tool"] == "write" and finished["error"] is None
    assert finished["output"] == "Wrote file successfully."
    assert finished["input"]["content"] == "Hello from the scripted model!\n"
    edited = by_kind["file_edited"]
    assert edited["path"] == "hello.txt"
    assert "--- /dev/null\n+++ b/hello.txt\n" in edited["diff"]
    assert "+Hello from the scripted model!\n" in edited["diff"]
    text = by_kind["text"]
    assert text["text"] == "Done. The tool said: Wrote file successfully."
    deltas = [e["delta"] for e in events if e["kind"] == "text_delta" and e["part_id"] == text["part_id"]]
    assert "".join(deltas) == text["text"] and len(deltas) > 1
    assert by_kind["title"] == {"kind": "title", "title": "Please create the greeting file"}
    assert not [r for r in model.requests if not r["body"].get("tools")]  # so no title request to the model
    assert [e["phase"] for e in events if e["kind"] == "step"][:2] == ["start", "finish"]
    assert not [e for e in events if e["kind"] == "error"]
    assert (bridge.home / ".config/opencode/node_modules").is_symlink()  # no plugin install at start-up


def test_a_second_prompt_continues_the_conversation(bridge, control_plane, model, conversation):
    session_id = conversation
    mark, requests = control_plane.mark(), len(model.requests)
    control_plane.command("prompt", prompt_id=2, text="now run bash please", author="Bob",
                          model={"providerID": "scripted", "modelID": "scripted"}, opencode_session_id=session_id)
    assert control_plane.wait_event("idle", mark, prompt_id=2)
    events = control_plane.events(mark)
    assert "agent_session" not in [e["kind"] for e in events]
    finished = next(e for e in events if e["kind"] == "tool_finished")
    assert finished["tool"] == "bash" and finished["output"] == "hi\n" and finished["error"] is None
    assert (bridge.workspace / "bash.txt").read_text() == "hi\n"
    first_call = next(r for r in model.requests[requests:] if r["body"].get("tools"))
    history = json.dumps(first_call["body"]["messages"])
    assert "Please create the greeting file" in history and "Wrote file successfully." in history
    assert "now run bash please" in history
    tools = {t["function"]["name"] for t in first_call["body"]["tools"]}
    assert {"write", "edit", "bash", "read"} <= tools and "question" not in tools  # denied: nobody could answer


def test_a_prompt_sent_again_runs_once(bridge, control_plane, model, conversation):
    # Prompt ids are unique on the module's bridge: one it had already taken would be ignored.
    mark, requests = control_plane.mark(), len(model.requests)
    spec = {"prompt_id": 70, "text": "justtext once please", "author": "Ada", "model": None,
            "opencode_session_id": conversation}
    control_plane.command("prompt", **spec)
    again = control_plane.command("prompt", **spec)  # the control plane heard nothing of it yet
    assert control_plane.wait_result(again)["ok"] is True
    control_plane.wait_event("idle", mark, prompt_id=70)
    time.sleep(1)  # a second run would have begun by now
    kinds = [e["kind"] for e in control_plane.events(mark) if e.get("prompt_id") == 70]
    assert kinds.count("prompt_started") == 1 and kinds.count("idle") == 1
    assert len([r for r in model.requests[requests:] if "justtext once please" in json.dumps(r["body"])]) == 1


def test_stop_aborts_a_slow_run_and_idle_follows(bridge, control_plane, conversation):
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=3, text="something slow please", author="Ada", model=None,
                          opencode_session_id=conversation)
    control_plane.wait_event("text_delta", mark, timeout=30)
    busy = control_plane.wait_for(lambda _n, m: m.get("type") == "heartbeat" and m["busy"], mark, timeout=5)
    assert busy["busy"] is True
    stop = control_plane.command("stop")
    assert control_plane.wait_result(stop)["ok"] is True
    stopped = time.monotonic()
    control_plane.wait_event("idle", mark, timeout=10, prompt_id=3)
    assert time.monotonic() - stopped < 5
    events = control_plane.events(mark)
    assert len([e for e in events if e["kind"] == "text_delta"]) < 40
    assert not [e for e in events if e["kind"] == "error"]  # a stop is not a failure


def test_an_error_is_reported_once_and_idle_follows(bridge, control_plane):
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=4, text="justtext please", author="Ada",  # a session of its own:
                          model={"providerID": "scripted", "modelID": "nope"},  # OpenCode keeps the last model
                          opencode_session_id=None)
    control_plane.wait_event("idle", mark, prompt_id=4)
    errors = [e for e in control_plane.events(mark) if e["kind"] == "error"]
    assert len(errors) == 1, errors  # OpenCode sends this one twice
    assert errors[0] == {"kind": "error", "name": "UnknownError", "message": "Model not found: scripted/nope."}


def test_an_unknown_session_id_starts_a_new_session(bridge, control_plane):
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=40, text="justtext please", author="Ada", model=None,
                          opencode_session_id="ses_0000000000000000000000000")
    control_plane.wait_event("idle", mark, prompt_id=40)
    kinds = [e["kind"] for e in control_plane.events(mark)]
    assert kinds[:3] == ["agent_session", "title", "prompt_started"] and "text" in kinds


def test_unacknowledged_events_are_sent_again_after_a_reconnect_and_refused_ones_never(bridge, control_plane,
                                                                                     conversation):
    control_plane.auto_ack = False
    try:
        mark, connection = control_plane.mark(), control_plane.connections
        control_plane.command("prompt", prompt_id=5, text="justtext please", author="Ada", model=None,
                              opencode_session_id=conversation)
        control_plane.wait_event("idle", mark, prompt_id=5)
        sent = [m["id"] for _n, m in control_plane.messages[mark:] if m.get("type") == "event"]
        assert len(sent) >= 6
        third = len(sent) // 3
        acked, refused, unacked = sent[:third], sent[third:2 * third], sent[2 * third:]
        control_plane.ack(acked)
        control_plane.refuse(refused)  # never to be stored: the bridge drops them
        time.sleep(0.3)
        control_plane.drop()
        control_plane.wait_for(lambda n, m: n == connection + 1 and m.get("type") == "hello", mark, timeout=10)

        def resent():
            new = [m for n, m in control_plane.messages[mark:] if n == connection + 1]
            return [m["id"] for m in new if m.get("type") == "event"]
        eventually(lambda: len(resent()) >= len(unacked), what="the unacknowledged events sent again")
        time.sleep(0.3)  # and nothing more
        assert resent() == unacked  # in order, each once, and none of the acknowledged ones
        control_plane.ack(unacked)
    finally:
        control_plane.auto_ack = True


def test_prepare_snapshot_folds_the_database_log(bridge, control_plane, conversation):
    result = control_plane.wait_result(control_plane.command("prepare_snapshot"))
    assert result["ok"] is True, result
    data = bridge.home / ".local/share/opencode"
    assert (data / "opencode.db").stat().st_size > 0
    wal = data / "opencode.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_resume_with_an_unreadable_database_fails_clearly_and_cleans_up(bridge, control_plane, conversation):
    # (the replay itself is tested end to end: a follow-up restored into a pooled sandbox)
    aside = bridge.home / RESTORE_DIR
    aside.mkdir()
    (aside / "opencode.db").write_text("not a database")
    (bridge.home / RESTORE_DONE).write_text("done\n")
    result = control_plane.wait_result(control_plane.command("resume"))
    assert result["ok"] is False and "could not be read" in result["error"]
    assert [p.name for p in aside.iterdir()] == ["resumed"]
    again = time.monotonic()  # sent again (after a reconnect): done already, it does not wait for files
    assert control_plane.wait_result(control_plane.command("resume"))["ok"] is True
    assert time.monotonic() - again < 5
    # The conversation the bridge runs is untouched.
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=9, text="justtext still here?", author="Ada", model=None,
                          opencode_session_id=conversation)
    assert control_plane.wait_event("idle", mark, prompt_id=9)
    assert "agent_session" not in [e["kind"] for e in control_plane.events(mark)]


def test_a_bridge_with_a_wrong_token_is_refused_and_keeps_trying(tools, model, control_plane, tmp_path):
    env = bridge_env(control_plane, model, tools, tmp_path, tmp_path, INSPECT_SANDBOX_TOKEN="not-the-token-4711",
                     INSPECT_OPENCODE_BIN=str(tmp_path / "no-opencode"), INSPECT_RECONNECT_MAX_SECONDS="1")
    before, hellos = control_plane.refused, control_plane.mark()
    other = Bridge(env, tmp_path / "bridge.log")
    try:
        try:
            eventually(lambda: control_plane.refused >= before + 3, timeout=15, interval=0.1)
        except AssertionError:
            raise AssertionError(other.output()) from None
        assert other.process.poll() is None, other.output()
        assert "refused the connection: HTTP 403" in other.output()
        assert "4711" not in other.output()  # the token is never logged
        assert not [m for _n, m in control_plane.messages[hellos:] if m.get("type") == "hello"]
    finally:
        other.stop()
    assert other.process.returncode == 0


def test_opencode_is_restarted_when_it_dies_and_the_session_goes_on(bridge, control_plane, conversation):
    pid, session_id = opencode_pid(bridge), conversation
    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=6, text="another slow one please", author="Ada", model=None,
                          opencode_session_id=session_id)
    control_plane.wait_event("text_delta", mark)
    os.kill(pid, signal.SIGKILL)
    control_plane.wait_event("error", mark, timeout=10, name="OpenCodeExited")
    control_plane.wait_event("idle", mark, timeout=10, prompt_id=6)

    mark = control_plane.mark()
    control_plane.command("prompt", prompt_id=7, text="justtext after the restart", author="Ada", model=None,
                          opencode_session_id=session_id)
    control_plane.wait_event("idle", mark, timeout=90, prompt_id=7)
    events = control_plane.events(mark)
    assert "agent_session" not in [e["kind"] for e in events]  # the same OpenCode session, from its database
    assert [e["text"] for e in events if e["kind"] == "text"] == ["Just some text, no tools here."]
    assert opencode_pid(bridge) != pid


def test_shutdown_stops_opencode_and_exits(new_bridge):
    bridge, control_plane = new_bridge, new_bridge.control_plane
    control_plane.wait_for(lambda _n, m: m.get("type") == "heartbeat")
    eventually(lambda: "OpenCode started (pid " in bridge.output(), timeout=30, what="OpenCode started")
    pid = opencode_pid(bridge)
    result = control_plane.wait_result(control_plane.command("shutdown"))
    assert result["ok"] is True
    assert bridge.process.wait(15) == 0
    assert not Path(f"/proc/{pid}").exists()


def test_a_run_ends_with_its_commit_and_the_agents_pull_request_before_its_idle(bridge, control_plane,
                                                                               conversation):
    assert (bridge.home / ".config/opencode/tools/create_pull_request.ts").exists()
    (bridge.workspace / "greeting.txt").write_text("hi\n")  # what the run leaves changed
    mark = control_plane.mark()
    author = {"name": "Ada Lovelace", "email": "ada@example.com"}
    control_plane.command("prompt", prompt_id=21, text="pullrequest please", author="Ada", model=None,
                          opencode_session_id=conversation,
                          commit={"branch": "inspect/21", "author": author, "co_authors": [], "message": "Greet"})
    finished = control_plane.wait_event("tool_finished", mark, timeout=60, tool="create_pull_request")
    assert finished["error"] is None and "open the pull request" in finished["output"]
    control_plane.wait_event("idle", mark, prompt_id=21)
    events = control_plane.events(mark)
    kinds = [e["kind"] for e in events]
    assert kinds.index("tool_finished") < kinds.index("commit") < kinds.index("pull_request_asked") \
        < kinds.index("idle")
    commit = events[kinds.index("commit")]
    assert commit["author"] == author and commit["branch"] == "inspect/21"
    assert "greeting.txt" in [f["path"] for f in commit["files"]]
    assert not commit["handed_off"]  # this fake control plane serves no hand-off; the commit is made all the same
    asked = events[kinds.index("pull_request_asked")]
    assert (asked["title"], asked["body"], asked["draft"]) == ("Add the greeting file", "It says hello.", True)
    assert set(kinds) <= EVENT_KINDS
