"""The bridge's parts without processes: event translation, diffs, the outbox, its config, the agent's
watchdog and command bookkeeping. The bridge as a process: test_bridge_process.py."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from bridge.agent import Agent
from bridge.config import BridgeConfig, link_plugin_package
from bridge.files import tool_paths, unified_diff
from bridge.outbox import Outbox
from bridge.protocol import MAX_BRIDGE_MESSAGE_BYTES, MAX_EVENT_DEPTH
from bridge.translate import MAX_CHARS, Translator, clip
from sandboxes.tools import tools_dir


def opencode_event(kind: str, **properties) -> dict:
    return {"id": "evt_1", "type": kind, "properties": properties}


def test_translator_forwards_only_its_sessions_and_skips_user_text(tmp_path):
    translator = Translator(tmp_path)
    translator.track("ses_A").start_prompt(7)
    assert translator.handle(opencode_event("session.status", sessionID="ses_B", status={"type": "busy"})) == []
    assert translator.handle(opencode_event("message.part.delta", sessionID="ses_B", messageID="m", partID="p",
                                            field="text", delta="x")) == []
    translator.handle(opencode_event("message.updated", sessionID="ses_A", info={"id": "msg_U", "role": "user"}))
    user_text = {"id": "prt_U", "messageID": "msg_U", "type": "text", "text": "hi"}
    assert translator.handle(opencode_event("message.part.updated", sessionID="ses_A", part=user_text)) == []
    busy = opencode_event("session.status", sessionID="ses_A", status={"type": "busy"})
    assert translator.handle(busy) == [{"kind": "busy", "prompt_id": 7}]
    assert translator.handle(busy) == []  # OpenCode says busy at every step
    assert translator.busy
    assert translator.handle(opencode_event("session.idle", sessionID="ses_A")) == [{"kind": "idle", "prompt_id": 7}]
    assert translator.handle(opencode_event("session.status", sessionID="ses_A", status={"type": "idle"})) == []
    assert not translator.busy


def test_translator_reports_errors_once_and_aborts_never(tmp_path):
    translator = Translator(tmp_path)
    translator.track("ses_A").start_prompt(1)
    error = {"name": "APIError", "data": {"message": "scripted invalid api key"}}
    assert translator.handle(opencode_event("session.error", sessionID="ses_A", error=error)) == [
        {"kind": "error", "name": "APIError", "message": "scripted invalid api key"}]
    assert translator.handle(opencode_event("session.error", sessionID="ses_A", error=error)) == []
    aborted = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
    assert translator.handle(opencode_event("session.error", sessionID="ses_A", error=aborted)) == []


def test_translator_tools_start_once_and_diff_what_they_changed(tmp_path):
    translator = Translator(tmp_path)
    translator.track("ses_A")
    (tmp_path / "app.py").write_text("a = 1\nb = 2\n")
    part = {"id": "prt_T", "messageID": "msg_A", "type": "tool", "tool": "edit", "callID": "call_1"}
    running = {"status": "running", "input": {"filePath": str(tmp_path / "app.py"), "oldString": "b = 2"}}

    def update(state: dict) -> list[dict]:
        event = opencode_event("message.part.updated", sessionID="ses_A", part={**part, "state": state})
        return translator.handle(event)

    assert [e["kind"] for e in update(running)] == ["tool_started"]
    assert update(running) == []  # bash and others say running more than once
    (tmp_path / "app.py").write_text("a = 1\nb = 3\n")
    events = update({**running, "status": "completed", "output": "Edit applied successfully.", "title": "app.py"})
    assert [e["kind"] for e in events] == ["tool_finished", "file_edited"]
    assert events[0]["output"] == "Edit applied successfully." and events[0]["error"] is None
    assert events[1] == {"kind": "file_edited", "path": "app.py",
                         "diff": "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3\n"}


def test_diffs_mark_a_missing_final_newline_and_patch_paths_are_found(tmp_path):
    assert unified_diff("x", b"a", b"b") == (
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n")
    assert unified_diff("x", b"same", b"same") is None
    assert unified_diff("x", None, b"\0bin").startswith("Binary files /dev/null and b/x differ")
    patch = "*** Begin Patch\n*** Update File: src/a.py\n@@\n*** Add File: b.py\n+x\n*** End Patch"
    assert tool_paths("apply_patch", {"patchText": patch}, tmp_path) == [tmp_path / "src/a.py", tmp_path / "b.py"]
    assert tool_paths("read", {"filePath": "/etc/passwd"}, tmp_path) == []
    clipped = clip({"content": "x" * (MAX_CHARS + 5), "n": 1})
    assert clipped["content"].endswith("[... 5 more characters not shown]") and clipped["n"] == 1


def test_outbox_keeps_events_until_acknowledged_and_messages_until_sent():
    outbox = Outbox()
    first = outbox.add_event({"kind": "a"})
    outbox.add_message({"type": "command_result", "command_id": 1})
    second = outbox.add_event({"kind": "b"})
    items = outbox.after(0)
    assert [m.get("id") for _s, m in items] == [first, None, second]
    for seq, _message in items:
        outbox.sent(seq)
    assert outbox.ack(first) and not outbox.ack(first)
    assert [m["id"] for _s, m in outbox.after(0)] == [second] and not outbox.has_messages


def test_an_event_the_control_plane_would_refuse_as_too_large_is_sent_as_an_error_instead():
    outbox = Outbox()
    nested: object = "x"
    for _ in range(MAX_EVENT_DEPTH + 1):
        nested = [nested]
    for event in ({"kind": "text", "text": "x" * MAX_BRIDGE_MESSAGE_BYTES}, {"kind": "tool_finished", "input": nested}):
        outbox.add_event(event)
    sent = [message["event"] for _seq, message in outbox.after(0)]
    assert [(e["kind"], e["name"]) for e in sent] == [("error", "EventTooLarge")] * 2
    assert "a tool_finished event was too large" in sent[1]["message"]


@pytest.fixture(scope="module")
def tools() -> Path:
    call_command("install_sandbox_tools")
    return tools_dir()


def test_config_forces_write_permissions_and_links_the_plugin_package(tmp_path, tools):
    env = {"INSPECT_CONTROL_PLANE_URL": "https://cp.example/base", "INSPECT_SANDBOX_ID": "42",
           "INSPECT_SANDBOX_TOKEN": "t", "HOME": str(tmp_path),
           "INSPECT_OPENCODE_CONFIG": json.dumps({"permission": {"edit": "allow", "read": "allow"}})}
    config = BridgeConfig.from_env(env)
    assert config.websocket_url == "wss://cp.example/base/ws/sandbox/42/"
    merged = config.merged_opencode_config()
    assert merged["permission"] == {"edit": "ask", "read": "allow", "bash": "ask", "question": "deny"}
    assert merged["snapshot"] is False and merged["share"] == "disabled"
    child_env = config.opencode_env("pw")
    assert "INSPECT_SANDBOX_TOKEN" not in child_env and child_env["OPENCODE_SERVER_PASSWORD"] == "pw"
    folder = tmp_path / "config"
    assert link_plugin_package(folder, tools) and not link_plugin_package(folder, tools)
    assert (folder / "node_modules/@opencode-ai/plugin/package.json").exists()
    lock = json.loads((folder / "package-lock.json").read_text())
    assert "@opencode-ai/plugin" in lock["packages"][""]["dependencies"]


def agent_for_tests(tmp_path, **env) -> Agent:
    env = {"INSPECT_CONTROL_PLANE_URL": "http://cp", "INSPECT_SANDBOX_ID": "1", "INSPECT_SANDBOX_TOKEN": "t",
           "HOME": str(tmp_path), "INSPECT_WORKSPACE": str(tmp_path), **env}
    return Agent(BridgeConfig.from_env(env), Outbox())


def test_watchdog_ends_a_run_opencode_forgot_to_end(tmp_path):
    agent = agent_for_tests(tmp_path)
    calls = []

    class Server:
        alive = True

        async def request(self, method, path, body=None, timeout=30):
            calls.append(path)
            return {}  # no session is busy

    agent.server = Server()
    agent.ready.set()
    state = agent.translator.track("ses_A")
    state.start_prompt(9)
    asyncio.run(agent.check_sessions())
    assert calls == []  # OpenCode has not said anything yet: not due
    state.error_at = time.monotonic() - 2  # an error, then no idle
    asyncio.run(agent.check_sessions())
    assert calls == ["/session/status"]
    assert [m["event"] for _s, m in agent.outbox.after(0)] == [{"kind": "idle", "prompt_id": 9}]
    assert not agent.translator.busy


def test_a_command_sent_again_is_answered_again_not_run_again(tmp_path):
    agent = agent_for_tests(tmp_path)

    async def scenario():
        worker = asyncio.create_task(agent.work())
        command = {"type": "command", "command_id": 5, "name": "sync_done"}
        agent.on_command(command)
        agent.on_command(command)  # still running: ignored
        await asyncio.sleep(0.05)
        agent.on_command(command)  # done: the same result again
        agent.on_command({"type": "command", "command_id": 6, "name": "dance"})
        await asyncio.sleep(0.05)
        worker.cancel()

    asyncio.run(scenario())
    results = [m for _s, m in agent.outbox.after(0)]
    assert results[0] == results[1] == {"type": "command_result", "command_id": 5, "ok": True, "error": None}
    assert results[2]["ok"] is False and "unknown command" in results[2]["error"] and len(results) == 3
    assert agent.synced


@pytest.mark.parametrize(("name", "value", "error"), [
    ("INSPECT_OPENCODE_CONFIG", "{not json", "INSPECT_OPENCODE_CONFIG is not valid JSON"),
    ("INSPECT_SERVICES", '["ide"]', "INSPECT_SERVICES must be a JSON object"),
])
def test_a_bad_json_variable_is_named_in_the_error(name, value, error):
    from bridge.config import ConfigError

    env = {"INSPECT_CONTROL_PLANE_URL": "http://127.0.0.1:8000", "INSPECT_SANDBOX_ID": "s",
           "INSPECT_SANDBOX_TOKEN": "t", name: value}
    with pytest.raises(ConfigError, match=error):
        BridgeConfig.from_env(env)
    assert BridgeConfig.from_env({k: v for k, v in env.items() if k != name}).services == {}


def test_opencode_is_warmed_up_only_while_no_command_waits_for_it(tmp_path):
    """A prompt waiting for OpenCode to start does the warm-up's work itself; both at once compete."""
    agent = agent_for_tests(tmp_path)
    assert agent.server.nothing_waiting()
    agent.on_command({"command_id": 1, "name": "prompt", "prompt_id": 7, "text": "hi"})
    assert not agent.server.nothing_waiting()


def test_opencode_has_started_once_its_first_run_reached_the_model_or_it_was_warmed_up(tmp_path):
    """What a restored sandbox's VS Code and desktop wait for (see test_bridge_services)."""
    agent = agent_for_tests(tmp_path)
    agent.emit({"kind": "prompt_started", "prompt_id": 1})
    agent.emit({"kind": "busy", "prompt_id": 1})  # OpenCode's loop starts well before it calls the model
    assert not agent.started.is_set()
    agent.emit({"kind": "step", "phase": "start", "reason": None, "tokens": None})
    assert agent.started.is_set()

    warmed = agent_for_tests(tmp_path)
    asyncio.run(warmed.server.warm_up())  # fails (no OpenCode here): over all the same
    assert warmed.started.is_set()


def test_a_pooled_sandboxs_dev_servers_wait_for_the_claimed_command(tmp_path):
    """Its dev servers would hold ports on the network the host's other sandboxes share (the local
    backend) before any session needs them; the gate itself is tested in test_bridge_services."""
    dev = {"commands": ["python3 -m http.server 3000"], "ports": [3000]}
    pooled = agent_for_tests(tmp_path, INSPECT_SERVICES=json.dumps({"dev": {**dev, "after_claim": True}}))
    assert not pooled.workspace.claimed.is_set()

    async def scenario():
        worker = asyncio.create_task(pooled.work())
        pooled.on_command({"type": "command", "command_id": 1, "name": "claimed"})
        await asyncio.sleep(0.05)
        worker.cancel()

    asyncio.run(scenario())
    assert pooled.workspace.claimed.is_set()
    assert [m for _s, m in pooled.outbox.after(0)] == [
        {"type": "command_result", "command_id": 1, "ok": True, "error": None}]
    started_for_a_session = agent_for_tests(tmp_path, INSPECT_SERVICES=json.dumps({"dev": dev}))
    assert started_for_a_session.workspace.claimed.is_set()


def test_the_bridge_asks_often_whether_opencode_serves_yet(tmp_path):
    """Its start is on the way of a restored sandbox's first prompt: the bridge asks often whether it serves."""
    import http.server
    import threading

    asked = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(time.monotonic())
            body = json.dumps({"healthy": len(asked) > 3 and asked[-1] - asked[0] > 0.3, "version": "x"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    agent = agent_for_tests(tmp_path)

    class Process:
        returncode = None

    agent.server.process, agent.server.port = Process(), server.server_address[1]
    try:
        assert asyncio.run(agent.server._wait_healthy(10)) and agent.server.version == "x"
    finally:
        server.shutdown()
    gaps = [b - a for a, b in zip(asked, asked[1:], strict=False)]
    assert len(asked) >= 5 and max(gaps) < 0.15, gaps


def test_the_agent_carries_out_every_command_of_the_protocol_and_no_other():
    from bridge.protocol import COMMAND_NAMES

    handlers = {name.removeprefix("cmd_") for name in dir(Agent) if name.startswith("cmd_")}
    assert handlers == COMMAND_NAMES
