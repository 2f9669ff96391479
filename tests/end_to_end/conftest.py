"""The control plane as `make run` runs it (the front proxy before Daphne), pointed at the scripted model provider."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from playwright.sync_api import expect, sync_playwright

from inspect_site.celery import app
from sandboxes import builds, provisioning
from sandboxes.models import Repo, Sandbox
from sessions.models import Session
from tests.support.front import FrontServer
from tests.support.live_server import LiveServer

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def outside_the_event_loop(function) -> None:
    """Run ORM code away from the thread where Playwright's sync API keeps its event loop."""
    def call() -> None:
        try:
            function()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(call).result()


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        yield page
        browser.close()


@pytest.fixture
def platform(settings, model_server, git_repo):
    """The control plane as it runs in production, pointed at the scripted provider: (front, repo). Browsers
    and bridges reach two Daphnes (`front.daphnes`, as `make run` has by default) through the front proxy,
    which hands each new socket to the one with fewer open: a page's socket and its sandbox's bridge
    usually land on different processes."""
    with running_platform(settings, model_server, {"name": "demo", "clone_url": git_repo.url}) as running:
        yield running


@contextmanager
def running_platform(settings, model_server, repo_fields: dict, env: dict[str, str] | None = None):
    """Two Daphnes behind the front proxy (with `env` on top of the test's environment), a Celery worker in this
    process, and a repo made of `repo_fields` whose image is built: (front, repo)."""
    provider_env = {
        "OPENAI_COMPATIBLE_NAME": "scripted", "OPENAI_COMPATIBLE_BASE_URL": model_server.url + "/v1",
        "OPENAI_COMPATIBLE_MODELS": "scripted", "OPENAI_COMPATIBLE_API_KEY": "sk-real-provider-key",
        **(env or {}),
    }
    daphnes = []
    try:
        for _ in range(2):
            daphnes.append(LiveServer(env=provider_env))
            daphnes[-1].start()
        live = FrontServer(*daphnes).start()
    except Exception:
        for daphne in daphnes:
            daphne.stop()
        raise
    settings.MODEL_PROVIDERS = [{
        "name": "scripted", "kind": "openai", "label": "Scripted", "base_url": model_server.url + "/v1",
        "api_key": "sk-real-provider-key", "models": ["scripted"],
    }]
    settings.DEFAULT_MODEL = "scripted/scripted"
    settings.SANDBOX_CONTROL_PLANE_URL = live.url
    settings.SANDBOX_START_BRIDGE = True
    repo = Repo.objects.create(**repo_fields)
    assert builds.run_build(repo.request_build()[0].pk).status == "ready"
    app.control.purge()
    try:
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"):
            yield live, repo
    finally:
        for sandbox in Sandbox.objects.all():
            print("sandbox", sandbox.pk, sandbox.state, sandbox.end_reason)
            log = settings.SANDBOX_ROOT / "sandboxes" / str(sandbox.pk) / "service-bridge.log"
            if log.exists():
                print("bridge log:", log.read_text()[-3000:])
        print("nginx and daphne log:", live.log()[-6000:])
        from sessions.models import Event, Prompt
        print("prompts:", list(Prompt.objects.values_list("pk", "status", "text")))
        print("events:", [(e.seq, e.kind, str(e.data)[:80]) for e in Event.objects.order_by("seq")][-25:])
        for session in Session.objects.exclude(sandbox=None):
            provisioning.terminate(session.sandbox_id, "test over")
        live.stop()
        for daphne in daphnes:
            daphne.stop()
