"""A prompt becomes an agent run, end to end, with every real part: Daphne (the session and bridge
sockets, the model proxy), a Celery worker, a local bubblewrap sandbox running the bridge and the
real OpenCode, and the scripted model provider."""

import asyncio
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sandboxes.backends import get_backend
from sandboxes.models import Repo, Sandbox
from sessions import member_requests
from sessions import tasks as session_tasks
from sessions.models import Event, Session
from tests.support.session_watcher import Watcher, is_event
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


def sign_in(live) -> tuple[User, dict]:
    user = User.objects.create_user("ada", "ada@example.com", "correct-horse-battery")
    client = Client()
    client.force_login(user)
    return user, {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": live.url}


def test_a_prompt_runs_in_a_sandbox_and_everyone_sees_it_live(platform, model_server):
    live, repo = platform
    user, headers = sign_in(live)
    session = member_requests.create_session(repo, user, "Please write file:hello.txt")

    async def scenario():
        async with Watcher(live, session.pk, headers) as watcher:
            await watcher.until(is_event("idle"), timeout=120)
            return watcher

    watcher = asyncio.run(scenario())
    kinds = watcher.kinds()
    assert kinds.index("prompt_queued") < kinds.index("prompt_started") < kinds.index("idle")
    [write] = [t for t in watcher.of("tool_finished") if t["tool"] == "write"]
    assert write["input"]["content"] == "Hello from the scripted model!\n" and not write["error"]
    [edit] = watcher.of("file_edited")
    assert edit["path"].endswith("hello.txt") and "+Hello from the scripted model!" in edit["diff"]
    assert "Done." in "".join(t["text"] for t in watcher.of("text"))
    assert [e["seq"] for e in watcher.events] == list(range(1, len(watcher.events) + 1))

    session.refresh_from_db()
    out = get_backend().exec(session.sandbox.backend_ref, "cat hello.txt").output
    assert out == "Hello from the scripted model!\n"
    # The provider saw the real key, never the sandbox's token.
    keys = {
        {k.lower(): v for k, v in r["headers"].items()}.get("authorization")
        for r in model_server.requests if r["path"].endswith("completions")
    }
    assert keys == {"Bearer sk-real-provider-key"}

    # The agent's own shell (a bash tool call, in the bridge's namespaces) finds no token that opens the bridge's
    # socket: the bridge (non-dumpable) lets no process read its environment, and the model token OpenCode holds
    # is refused there.
    probe = ("shell: echo readable=$(grep -l INSPECT_SANDBOX_TOKEN /proc/[0-9]*/environ 2>/dev/null | wc -l); "
             "cat /proc/$(pgrep -f '^/usr/bin/python3 .*bridge/main.py')/environ >/dev/null 2>&1 "
             "|| echo bridge=denied; "
             "python3 -c 'import json, os; providers = json.loads(os.environ[\"OPENCODE_CONFIG_CONTENT\"])"
             "[\"provider\"]; print(\"model=\" + next(iter(providers.values()))[\"options\"][\"apiKey\"])'")
    prompt = member_requests.submit_prompt(session, user, probe)

    async def probe_run():
        async with Watcher(live, session.pk, headers) as watcher:
            await watcher.until(is_event("idle", prompt_id=prompt.pk), timeout=120)
            return watcher

    ran = asyncio.run(probe_run())
    [output] = [t["output"] for t in ran.of("tool_finished") if t["tool"] == "bash"][-1:]
    assert "readable=0" in output and "bridge=denied" in output, output
    model_token = output.split("model=", 1)[1].split()[0]
    assert Sandbox.live_id_for_model_token(model_token) == session.sandbox_id

    async def forge() -> int:
        url = live.url.replace("http", "ws") + f"/ws/sandbox/{session.sandbox_id}/"
        try:
            async with connect(url, additional_headers={"Authorization": f"Bearer {model_token}"}) as socket:
                await socket.send(json.dumps({"type": "event", "id": "forged", "event": {"kind": "idle"}}))
                await socket.wait_closed()
                return socket.close_code
        except InvalidStatus as refused:  # closed before it was accepted
            return refused.response.status_code

    assert asyncio.run(forge()) == 403
    assert not session.events.filter(bridge_event_id="forged").exists()


def test_follow_ups_queue_cancel_stop_and_a_reconnect_gets_only_what_it_missed(platform):
    live, repo = platform
    user, headers = sign_in(live)
    session = member_requests.create_session(repo, user, "Tell me something slow")

    async def scenario():
        async with Watcher(live, session.pk, headers) as watcher:
            await watcher.until(is_event("text_delta"), timeout=120)  # the slow answer is streaming
            first = (await watcher.send({"type": "prompt", "text": "justtext number two"}))["prompt_id"]
            second = (await watcher.send({"type": "prompt", "text": "justtext number three"}))["prompt_id"]
            assert (await watcher.send({"type": "cancel", "prompt_id": second}))["type"] == "ok"
            assert (await watcher.send({"type": "stop"}))["type"] == "ok"
            await watcher.until(is_event("prompt_started", prompt_id=first))
            seen_until = watcher.events[-1]["seq"]
            await watcher.until(is_event("idle", prompt_id=first))
            return watcher, first, second, seen_until

    watcher, first, second, seen_until = asyncio.run(scenario())
    started = [d["prompt_id"] for d in watcher.of("prompt_started")]
    assert started[1:] == [first]  # the follow-up ran after the stopped run; the cancelled one never ran
    assert second in [d["prompt_id"] for d in watcher.of("prompt_cancelled")]
    assert watcher.of("stop_requested")
    texts = "".join(t["text"] for t in watcher.of("text"))
    assert "word39" not in texts  # the slow run was cut short
    assert "Just some text" in texts

    async def reconnect():
        late = Watcher(live, session.pk, headers)
        late.events = [e for e in watcher.events if e["seq"] <= seen_until]
        async with late:
            await late.until(lambda m: m["type"] == "event" and m["seq"] == watcher.events[-1]["seq"])
        return late

    late = asyncio.run(reconnect())
    resent = [e["seq"] for e in late.events if e["seq"] > seen_until]
    assert resent == list(range(seen_until + 1, watcher.events[-1]["seq"] + 1))  # exactly the missed ones


@pytest.mark.parametrize("warm_pool,branch_moved", [(False, False), (True, False), (True, True)],
                         ids=["new-sandbox", "into-a-warm-sandbox", "into-a-warm-sandbox-after-the-branch-moved"])
def test_a_follow_up_after_the_sandbox_ended_restores_the_work_and_the_conversation(
    platform, model_server, settings, git_repo, warm_pool, branch_moved
):
    live, repo = platform
    user, headers = sign_in(live)
    session = member_requests.create_session(repo, user, "Please write file:notes.txt")

    async def run_until_idle(count: int):
        async with Watcher(live, session.pk, headers) as watcher:
            while len(watcher.of("idle")) < count:
                await watcher.until(is_event("idle"), timeout=120)
            return watcher

    asyncio.run(run_until_idle(1))
    eventually(lambda: Session.objects.get(pk=session.pk).last_snapshot_id, timeout=30, interval=0.2,
               what="a snapshot once the agent went idle")
    first_sandbox = Session.objects.get(pk=session.pk).sandbox
    snapshot_id = Session.objects.get(pk=session.pk).last_snapshot_id
    if branch_moved:  # the warm sandbox syncs to the newer head; the work goes back onto its own commit
        git_repo.commit({"later.txt": "merged meanwhile\n"}, "the branch moved on")
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 0
    # Once the sandbox is let go, the repo keeps a warm one for a follow-up (unless that is turned off).
    settings.SESSION_FOLLOW_UP_WARM_SECONDS = 3600 if warm_pool else 0
    session_tasks.release_idle_sandboxes()
    first_sandbox.refresh_from_db()
    assert first_sandbox.state == "terminated" and "idle" in first_sandbox.end_reason
    assert Repo.objects.get(pk=repo.pk).warm_pool_size == 0
    pooled = None
    if warm_pool:  # the warm sandbox waits: the follow-up restores into it, its OpenCode already running
        pooled = eventually(lambda: Sandbox.objects.filter(repo=repo, pooled=True).first(), timeout=30, interval=0.1,
                            what="a warm sandbox started for a follow-up")
        bridge_log = settings.SANDBOX_ROOT / "sandboxes" / str(pooled.pk) / "service-bridge.log"
        # Waiting, its OpenCode is warmed up by a prompt that the control plane answers itself.
        eventually(lambda: Sandbox.objects.get(pk=pooled.pk).state == "ready" and bridge_log.exists()
                   and "OpenCode warmed up" in bridge_log.read_text(), timeout=60, interval=0.2,
                   what="the pooled sandbox started and warmed up")
        assert "warming OpenCode up failed" not in bridge_log.read_text()
        pooled.refresh_from_db()
        assert (pooled.synced_commit != first_sandbox.synced_commit) == branch_moved

    member_requests.submit_prompt(Session.objects.get(pk=session.pk), user, "justtext are you still there?")
    watcher = asyncio.run(run_until_idle(2))
    session.refresh_from_db()
    # (the restored sandbox may be snapshotted again already, once idle)
    assert session.sandbox_id != first_sandbox.pk and session.sandbox.restored_from_id == snapshot_id
    if not warm_pool:
        assert not Sandbox.objects.filter(repo=repo, claimed_at__isnull=False).exists()  # none was kept warm
    if warm_pool:
        assert session.sandbox_id == pooled.pk and session.sandbox.claimed_at is not None
        assert "Reply with one word." not in json.dumps(model_server.requests)  # the warm-up reached no model
    assert get_backend().exec(session.sandbox.backend_ref, "cat notes.txt").output == "Hello from the scripted model!\n"
    if branch_moved:  # the session's branch: the first run's commit, on the commit the first sandbox synced to
        head = get_backend().exec(session.sandbox.backend_ref, "git rev-parse HEAD HEAD~1; ls").output
        first_commit = Event.objects.filter(session=session, kind="commit").order_by("seq").first().data["sha"]
        assert head.split() == [first_commit, first_sandbox.synced_commit, "README.md", "app.py", "notes.txt"]
    last_call = [r for r in model_server.requests if r["path"].endswith("completions")][-1]
    history = json.dumps(last_call["body"]["messages"])
    assert "Please write file:notes.txt" in history  # the same OpenCode conversation went on
    assert watcher.of("prompt_started")
    assert not watcher.of("agent_session")[1:]  # no new OpenCode session was started for the follow-up
