"""The model proxy's own cost on the live platform: the same model call through Daphne's
/model-proxy/ and straight to the scripted model, alternately. Part of the `sessions` group."""

import json
import time

import httpx

from bench._common import p50, report, say
from bench._live import PROVIDER, Platform, fake_ready_image, make_user, session_on, simulated_sandbox
from sandboxes.models import Repo

HOP_RUNS = 31
# About what OpenCode sends with a short conversation: its system prompt and tool schemas (~40 KB).
TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "x" * 1000,
                                           "parameters": {"type": "object", "properties": {}}}} for i in range(36)]


def first_text(client: httpx.Client, url: str, token: str, body: bytes) -> float:
    """Seconds from sending the request to the first streamed line with text in it (read to the end)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    first = None
    with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        for line in response.iter_lines():
            if first is None and line.startswith("data: ") and '"content"' in line:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{url} streamed no text")
    return first


def model_proxy_hop(platform: Platform, repo: Repo) -> None:
    sandbox, _bridge_token = simulated_sandbox(repo, fake_ready_image(repo))
    session_on(repo, sandbox, [make_user("hop")])  # the proxy counts a session's tokens
    token = sandbox.issue_model_token()  # what its OpenCode presents
    body = json.dumps({"model": PROVIDER, "stream": True, "tools": TOOLS,
                       "messages": [{"role": "system", "content": "y" * 4000},
                                    {"role": "user", "content": "justtext hop"}]}).encode()
    proxied_url = f"{platform.url}/model-proxy/{PROVIDER}/v1/chat/completions"
    direct_url = f"{platform.model.url}/v1/chat/completions"
    proxied, direct = [], []
    with httpx.Client(timeout=30) as client:
        for url in (proxied_url, direct_url):  # warm both paths
            first_text(client, url, token, body)
        for _ in range(HOP_RUNS):
            proxied.append(first_text(client, proxied_url, token, body))
            direct.append(first_text(client, direct_url, token, body))
    overhead = [p - d for p, d in zip(proxied, direct, strict=True)]
    report("model_proxy_overhead_p50", p50(overhead) * 1000, "ms", 2)
    say(f"a {len(body) // 1024} KB streamed chat completion, {HOP_RUNS} alternating calls: first text through "
        f"/model-proxy/ p50 {p50(proxied) * 1000:.2f} ms, straight from the scripted model p50 "
        f"{p50(direct) * 1000:.2f} ms (the overhead is the median of the paired differences)")
