"""Faults with real processes: while the agent runs a command in a real sandbox, each part of the control plane
is killed with SIGKILL and started again (both Daphnes; the Celery worker and Redis; then everything, for longer
than the heartbeat timeout), and last the bridge inside the sandbox. Afterwards no event is lost or doubled, every
prompt ran once (the one whose bridge was killed failed and says why), the sandbox is the same one with all of its
work, and a browser that subscribes sees the whole log in order."""

import asyncio
import json
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from websockets.asyncio.client import connect

from sandboxes import builds, provisioning
from sandboxes.backends import get_backend
from sandboxes.bridge_launch import BRIDGE_COMMAND
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox
from sessions.models import Event, Prompt, Session
from tests.faults.stack import Stack, start_session
from tests.support.session_watcher import Watcher
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]
HEARTBEAT_TIMEOUT = 5  # seconds, for the reaper's round after the outage (the default is 120)


def events(session_id: int, kind: str) -> list[dict]:
    return list(Event.objects.filter(session_id=session_id, kind=kind).order_by("seq").values_list("data", flat=True))


def wait_until_the_command_runs(session_id: int, commands_started: int) -> None:
    eventually(lambda: len([e for e in events(session_id, "tool_started") if e["tool"] == "bash"]) >= commands_started,
               timeout=120, interval=0.1, what=f"bash call {commands_started} to start")


def wait_until_done(session_id: int, prompt: Prompt, stack: Stack) -> None:
    try:
        eventually(lambda: Prompt.objects.get(pk=prompt.pk).status == Prompt.Status.DONE
                   and any(e.get("prompt_id") == prompt.pk for e in events(session_id, "idle")),
                   timeout=120, interval=0.2, what=f"prompt {prompt.text!r} to finish")
    except AssertionError:
        print(stack.log())
        raise


def follow_up(stack: Stack, session_id: int, headers: dict, text: str) -> Prompt:
    async def send() -> int:
        url = stack.front.url.replace("http", "ws") + f"/ws/sessions/{session_id}/"
        async with connect(url, additional_headers=headers) as socket:
            await socket.send(json.dumps({"type": "prompt", "text": text}))
            while True:
                answer = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if answer["type"] in ("ok", "error"):
                    assert answer["type"] == "ok", answer
                    return answer["prompt_id"]

    try:
        return Prompt.objects.get(pk=asyncio.run(send()))
    except Exception:
        print(stack.log())
        raise


def test_the_agents_work_survives_every_control_plane_process_dying(model_server, git_repo, open_tmp):
    repo = Repo.objects.create(name="demo", clone_url=git_repo.url)
    assert builds.run_build(repo.request_build()[0].pk).status == "ready"
    user = User.objects.create_user("ada", "ada@example.com", "correct-horse-battery")
    client = Client()
    client.force_login(user)
    var = open_tmp / "stack"
    var.mkdir()
    stack = Stack(model_server.url, var)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": stack.front.url}
    faults = []
    try:
        # 1. Both Daphnes die while the agent's command runs (the bridge's socket and the model proxy go with them).
        session_id = start_session(stack, user, repo.pk, "shell: echo one > fault.txt; sleep 8; echo two >> fault.txt")
        wait_until_the_command_runs(session_id, 1)
        sandbox_id = Session.objects.get(pk=session_id).sandbox_id
        for daphne in stack.daphnes:
            stack.kill(daphne.process)
        time.sleep(1)
        for daphne in stack.daphnes:
            daphne.start()
        wait_until_done(session_id, Prompt.objects.get(session_id=session_id), stack)
        faults.append("both Daphnes")

        # 2. The Celery worker and Redis (the channel layer and the broker) die mid-command.
        second = follow_up(stack, session_id, headers,
                           "shell: echo three >> fault.txt; sleep 8; echo four >> fault.txt")
        wait_until_the_command_runs(session_id, 2)
        stack.kill(stack.worker)
        stack.kill(stack.redis)
        time.sleep(1)
        stack.start_redis()
        stack.start_worker()
        wait_until_done(session_id, second, stack)
        faults.append("the worker and Redis")

        # 3. The whole control plane is down for longer than the heartbeat timeout, then comes back; the reaper
        # asks whether the silent sandbox is alive instead of ending it.
        third = follow_up(stack, session_id, headers, "shell: sleep 25; echo five >> fault.txt")
        wait_until_the_command_runs(session_id, 3)
        down_at = time.monotonic()
        stack.front.stop()
        for process in (*[d.process for d in stack.daphnes], stack.worker, stack.redis):
            stack.kill(process)
        time.sleep(HEARTBEAT_TIMEOUT * 2.5)
        stack.start_redis()
        for daphne in stack.daphnes:
            daphne.start()
        stack.front.start()
        stack.start_worker()
        assert time.monotonic() - down_at > HEARTBEAT_TIMEOUT * 2
        assert stack.reap(SANDBOX_HEARTBEAT_TIMEOUT_SECONDS=str(HEARTBEAT_TIMEOUT)) == "[]"
        wait_until_done(session_id, third, stack)
        faults.append("the whole control plane, past the heartbeat timeout")

        # 4. The bridge is killed inside the sandbox (as the agent's own shell could): the reaper finds the sandbox
        # alive without it and starts a new one. The run is lost and the session says so; the work and the
        # conversation stay, and the next prompt runs in the same sandbox.
        fourth = follow_up(stack, session_id, headers, "shell: sleep 20; echo late > killed.txt")
        wait_until_the_command_runs(session_id, 4)
        backend_ref = Session.objects.select_related("sandbox").get(pk=session_id).sandbox.backend_ref
        get_backend().exec(backend_ref, f"pkill -9 -x -f '{BRIDGE_COMMAND.removeprefix('exec ')}'")
        time.sleep(HEARTBEAT_TIMEOUT + 1)
        decisions = stack.reap(SANDBOX_HEARTBEAT_TIMEOUT_SECONDS=str(HEARTBEAT_TIMEOUT))
        assert "restart_bridge" in decisions and str(sandbox_id) in decisions, decisions
        eventually(lambda: Prompt.objects.get(pk=fourth.pk).status == Prompt.Status.FAILED, timeout=10,
                   what="the lost run to fail")
        assert "started again" in Session.objects.get(pk=session_id).error
        fifth = follow_up(stack, session_id, headers, "shell: echo six >> fault.txt")
        wait_until_done(session_id, fifth, stack)
        faults.append("the bridge, inside the sandbox")

        session = Session.objects.select_related("sandbox").get(pk=session_id)
        assert session.sandbox_id == sandbox_id
        assert session.sandbox.state in (State.READY, State.RUNNING, State.SNAPSHOTTING)
        out = get_backend().exec(session.sandbox.backend_ref, "cat fault.txt").output
        assert out == "one\ntwo\nthree\nfour\nfive\nsix\n"  # every command ran once, in the same sandbox

        prompts = list(Prompt.objects.filter(session_id=session_id).order_by("position"))
        done = [Prompt.Status.DONE] * 3
        assert [p.status for p in prompts] == [*done, Prompt.Status.FAILED, Prompt.Status.DONE]
        assert [e["prompt_id"] for e in events(session_id, "prompt_started")] == [p.pk for p in prompts]
        assert [e["prompt_id"] for e in events(session_id, "idle")] == [p.pk for p in prompts if p.pk != fourth.pk]
        calls = [e["call_id"] for e in events(session_id, "tool_finished") if e["tool"] == "bash"]
        assert len(calls) == len(set(calls)) == 4  # the killed run's call never finished
        # The same OpenCode conversation went on with the new bridge.
        assert len({e["opencode_session_id"] for e in events(session_id, "agent_session")}) == 1

        last = Event.objects.filter(session_id=session_id).order_by("-seq").values_list("seq", flat=True)[0]

        async def watch_from_the_start():
            async with Watcher(stack.front, session_id, headers) as watcher:
                await watcher.until(lambda m: m["type"] == "event" and m["seq"] == last, timeout=30)
                return watcher

        watcher = asyncio.run(watch_from_the_start())
        assert [e["seq"] for e in watcher.events] == list(range(1, last + 1))
        print("faults survived:", faults)
    finally:
        for sandbox in Sandbox.objects.exclude(state__in=(State.TERMINATED, State.FAILED)):
            provisioning.terminate(sandbox.pk, "test over")
        stack.stop()
