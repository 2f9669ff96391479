"""The control plane as separate real processes that a test may kill -9 and start again: a Redis of its own,
two Daphnes behind the front proxy (nginx), and a Celery worker. The test process reaches them only as a
browser would (HTTP and the session socket) and reads the shared database."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import redis
from django.conf import settings
from django.test import Client

from tests.support.front import FrontServer
from tests.support.live_server import BASE, LiveServer, free_port, stop_group, test_database_url
from tests.support.waiting import eventually


class Stack:
    def __init__(self, model_url: str, var: Path):
        self.redis_port = free_port()
        self.var = var
        self.env = {
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "OPENAI_COMPATIBLE_NAME": "scripted", "OPENAI_COMPATIBLE_BASE_URL": model_url + "/v1",
            "OPENAI_COMPATIBLE_MODELS": "scripted", "OPENAI_COMPATIBLE_API_KEY": "sk-real-provider-key",
            "DEFAULT_MODEL": "scripted/scripted",
            # The agent alone: VS Code and the desktop would only hold the two cores.
            "SANDBOX_START_BRIDGE": "1", "SANDBOX_WORKSPACE_SERVICES": "0",
        }
        self.redis: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.start_redis()
        self.daphnes = [LiveServer(env=self.env) for _ in range(2)]
        self.front = FrontServer(*self.daphnes)
        self.env["SANDBOX_CONTROL_PLANE_URL"] = self.front.url
        for daphne in self.daphnes:
            daphne.env.update(self.env)
            daphne.start()
        self.front.start()
        self.start_worker()

    def worker_env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": test_database_url(), "SANDBOX_ROOT": str(settings.SANDBOX_ROOT),
                **self.env}

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(self.var), "--logfile", str(self.var / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.redis_port)
        eventually(lambda: self.redis_answers(client), timeout=10, what="redis to answer")

    @staticmethod
    def redis_answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "inspect_site", "worker", "--pool", "threads", "--concurrency",
             "2", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=BASE, env=self.worker_env(), stdout=subprocess.DEVNULL,
            stderr=open(self.var / "worker.log", "ab"), start_new_session=True)

    def reap(self, **env: str) -> str:
        """One round of the reaper (what beat runs every 30 s), with `env` over the stack's: its decisions (what it
        would act on), carried out as the beat's task does."""
        code = "from sandboxes import provisioning, tasks; print(provisioning.reap()); tasks.reap_sandboxes()"
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE, capture_output=True,
                              text=True, env={**self.worker_env(), **env}, timeout=60)
        assert done.returncode == 0, done.stderr
        return next(line for line in done.stdout.splitlines() if line.startswith("["))

    @staticmethod
    def kill(process: subprocess.Popen | None) -> None:
        """kill -9, as a crash or the OOM killer would: nothing gets to clean up."""
        if process and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log(self) -> str:
        worker = (self.var / "worker.log").read_text(errors="replace") if (self.var / "worker.log").exists() else ""
        redis_log = (self.var / "redis.log").read_text(errors="replace") if (self.var / "redis.log").exists() else ""
        return self.front.log()[-6000:] + "\nworker:\n" + worker[-6000:] + "\nredis:\n" + redis_log[-2000:]

    def stop(self) -> None:
        for daphne in self.daphnes:
            daphne.stop()
        self.front.stop()
        stop_group(self.worker)
        stop_group(self.redis)


def start_session(stack: Stack, user, repo_id: int, prompt: str) -> int:
    """Start a session through the new-session form, as a signed-in browser does; its id."""
    client = Client()
    client.force_login(user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    with httpx.Client(base_url=stack.front.url, cookies=cookies, timeout=30) as browser:
        form = browser.get("/sessions/new")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        answer = browser.post("/sessions/new", data={
            "csrfmiddlewaretoken": token, "repo": repo_id, "model": "scripted/scripted", "prompt": prompt,
        }, headers={"Referer": stack.front.url + "/sessions/new"})
    assert answer.status_code == 302, answer.text[-2000:]
    return int(answer.headers["location"].rstrip("/").rsplit("/", 1)[1])
