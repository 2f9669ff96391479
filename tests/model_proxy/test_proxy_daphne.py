"""The model proxy under a real Daphne process: streaming (ASGITransport collects a whole response
before handing it over), clients that leave, calls that wait on their provider side by side, and the
warm-up model's answers taken by the real OpenCode's SDKs."""

import json
import os
import subprocess
import threading
import time

import httpx
import pytest

from bridge.config import link_plugin_package
from bridge.opencode import free_port
from bridge.protocol import WARM_UP_MODEL, WARM_UP_PROVIDER
from sandboxes.tools import opencode_binary, tools_dir
from tests.model_proxy.support import assert_clean_upstream, chat_body, db, header, make_sandbox, messages_body
from tests.support.live_server import LiveServer
from tests.support.model_server import LATE_SECONDS, ScriptedModelServer
from tests.support.providers import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def daphne(django_db_setup):
    """Daphne serving inspect_site.asgi on the test database, its providers (from the environment,
    none inherited) pointed at a scripted model server of its own."""
    upstream = ScriptedModelServer().start()
    live = LiveServer(env={
        "OPENAI_COMPATIBLE_BASE_URL": f"{upstream.url}/v1", "OPENAI_COMPATIBLE_NAME": "scripted",
        "OPENAI_COMPATIBLE_MODELS": "scripted", "OPENAI_COMPATIBLE_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_MODELS": "claude-test",
    }, without=("OPENAI_", "ANTHROPIC_"))
    try:
        live.start()
        yield live.url, upstream
    finally:
        live.stop()
        upstream.stop()


@db
def test_chunks_reach_the_client_as_the_provider_sends_them(daphne):
    url, upstream = daphne
    _, token = make_sandbox()
    arrivals = []
    start = time.monotonic()
    with httpx.stream("POST", f"{url}/model-proxy/scripted/v1/chat/completions", json=chat_body("slow"),
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content": "word' in line:
                arrivals.append(time.monotonic() - start)
    # 40 words 0.25 s apart: the first must arrive at once, not when the provider has finished.
    assert len(arrivals) == 40
    assert arrivals[0] < 1.5, arrivals[:3]
    assert arrivals[-1] - arrivals[0] > 8, (arrivals[0], arrivals[-1])
    assert arrivals[20] - arrivals[0] > 3.5  # spread out, not bunched
    assert header(upstream.requests[-1], "Authorization") == f"Bearer {OPENAI_KEY}"
    assert_clean_upstream(upstream.requests[-1], token)


@db
def test_a_client_that_leaves_stops_the_provider_stream(daphne):
    url, upstream = daphne
    _, token = make_sandbox()
    first = None
    start = time.monotonic()
    with httpx.stream("POST", f"{url}/model-proxy/anthropic/v1/messages", json=messages_body("slow"),
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01"}, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"text_delta"' in line:
                first = time.monotonic() - start
                break
    assert first is not None and first < 1.5
    assert header(upstream.requests[-1], "x-api-key") == ANTHROPIC_KEY
    # The proxy closed its upstream request: the provider's next write fails (it would take 10 s otherwise).
    eventually(lambda: any(r["path"] == "disconnected" for r in upstream.requests), timeout=5,
               what="the provider's stream to nobody ended")


@db
def test_daphne_serves_the_proxy_without_a_login_session(daphne):
    url, upstream = daphne
    _, token = make_sandbox()
    before = len(upstream.requests)
    refused = httpx.post(f"{url}/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"), timeout=10)
    assert refused.status_code == 401  # not a redirect to the login page, not a CSRF failure
    answered = httpx.post(f"{url}/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answered.status_code == 200 and answered.text.rstrip().endswith("data: [DONE]")
    assert len(upstream.requests) == before + 1


@db
def test_a_call_waiting_for_its_provider_holds_up_no_other_request(daphne):
    """Providers think for seconds before their first byte; meanwhile other agents' calls and
    people's pages must be served as usual, not queued behind the waiting one."""
    url, _upstream = daphne
    _, waiting_token = make_sandbox()
    _, other_token = make_sandbox()
    waited = {}

    def wait_for_provider() -> None:
        start = time.monotonic()
        answer = httpx.post(f"{url}/model-proxy/scripted/v1/chat/completions", json=chat_body("latefirst"),
                            headers={"Authorization": f"Bearer {waiting_token}"}, timeout=30)
        waited["seconds"], waited["status"] = time.monotonic() - start, answer.status_code

    thread = threading.Thread(target=wait_for_provider)
    thread.start()
    time.sleep(0.5)  # the first call is waiting on its provider
    start = time.monotonic()
    answered = httpx.post(f"{url}/model-proxy/scripted/v1/chat/completions", json=chat_body("justtext"),
                          headers={"Authorization": f"Bearer {other_token}"}, timeout=30)
    other_call = time.monotonic() - start
    start = time.monotonic()
    page = httpx.get(f"{url}/accounts/login/", timeout=30)
    page_load = time.monotonic() - start
    thread.join()

    assert answered.status_code == 200 and page.status_code == 200
    assert waited == {"seconds": pytest.approx(LATE_SECONDS, abs=1.5), "status": 200}
    assert other_call < 1.0, f"another sandbox's model call took {other_call:.2f} s"
    assert page_load < 1.0, f"a page took {page_load:.2f} s"


@db
@pytest.mark.parametrize("npm", ["@ai-sdk/openai-compatible", "@ai-sdk/anthropic"])
def test_opencodes_own_sdks_accept_the_warm_up_answer(daphne, npm, tmp_path):
    """The real OpenCode, through the proxy under Daphne, completes a prompt to the warm-up model in
    both wire formats (what the bridge's warm-up does), and no provider is called."""
    url, upstream = daphne
    _, token = make_sandbox()
    before = len(upstream.requests)
    config = {"provider": {WARM_UP_PROVIDER: {
        "npm": npm, "options": {"baseURL": f"{url}/model-proxy/{WARM_UP_PROVIDER}/v1", "apiKey": token},
        "models": {WARM_UP_MODEL: {"tool_call": True}}}},
        "model": f"{WARM_UP_PROVIDER}/{WARM_UP_MODEL}", "share": "disabled", "autoupdate": False, "snapshot": False}
    (tmp_path / "repo").mkdir()
    # As the bridge does: OpenCode finds its plugin package and does not try to install it at start.
    assert link_plugin_package(tmp_path / ".config" / "opencode", tools_dir())
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"),
           "XDG_DATA_HOME": str(tmp_path / "data"),
           "OPENCODE_CONFIG_CONTENT": json.dumps(config), "OPENCODE_DISABLE_MODELS_FETCH": "1",
           "OPENCODE_DISABLE_AUTOUPDATE": "1"}
    port = free_port()
    opencode = subprocess.Popen([str(opencode_binary()), "serve", "--port", str(port)], cwd=tmp_path / "repo", env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:  # as the bridge polls it
            try:
                return httpx.get(f"{base}/global/health", timeout=2).is_success
            except httpx.HTTPError:
                return False

        eventually(healthy, timeout=60, interval=0.1, what="OpenCode serving")
        session = httpx.post(f"{base}/session", json={"title": "warm-up"}, timeout=30).json()["id"]
        httpx.post(f"{base}/session/{session}/prompt_async", timeout=30, json={
            "model": {"providerID": WARM_UP_PROVIDER, "modelID": WARM_UP_MODEL},
            "parts": [{"type": "text", "text": "Reply with one word."}]}).raise_for_status()
        done = eventually(lambda: [m for m in httpx.get(f"{base}/session/{session}/message", timeout=30).json()
                                   if m["info"]["role"] == "assistant"
                                   and (m["info"].get("time") or {}).get("completed")],
                          timeout=60, interval=0.1, what="the warm-up prompt's answer")
    finally:
        opencode.kill()
        opencode.wait()
    answer = done[0]
    assert answer["info"].get("error") is None and answer["info"].get("finish") == "stop"
    assert [part["text"] for part in answer["parts"] if part["type"] == "text"] == ["ok"]
    assert len(upstream.requests) == before
