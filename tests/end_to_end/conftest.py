"""The control plane as `make run` runs it (the front proxy before Daphne), pointed at the scripted model provider."""

import pytest
from celery.contrib.testing.worker import start_worker

from inspect_site.celery import app
from sandboxes import builds, provisioning
from sandboxes.models import Repo, Sandbox
from sessions.models import Session
from tests.support.front import FrontServer
from tests.support.live_server import LiveServer


@pytest.fixture
def platform(settings, model_server, git_repo):
    """The control plane as it runs in production, pointed at the scripted provider: (front, repo). Browsers
    and bridges reach two Daphnes (`front.daphnes`, as `make run` has by default) through the front proxy,
    which hands each new socket to the one with fewer open: a page's socket and its sandbox's bridge
    usually land on different processes."""
    provider_env = {
        "OPENAI_COMPATIBLE_NAME": "scripted", "OPENAI_COMPATIBLE_BASE_URL": model_server.url + "/v1",
        "OPENAI_COMPATIBLE_MODELS": "scripted", "OPENAI_COMPATIBLE_API_KEY": "sk-real-provider-key",
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
    repo = Repo.objects.create(name="demo", clone_url=git_repo.url)
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


