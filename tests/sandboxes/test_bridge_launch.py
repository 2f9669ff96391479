"""What a sandbox's bridge is told to run (sandboxes/bridge_launch.py)."""

import json

import pytest

from sandboxes.bridge_launch import bridge_env, start_bridge
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from sandboxes.tools import vscode_dir

pytestmark = pytest.mark.django_db


def sandbox(pooled: bool) -> Sandbox:
    repo = Repo.objects.create(name=f"app-{pooled}", clone_url="file:///tmp/nowhere")
    image = RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY,
                                     start_commands=["npm run dev"], forward_ports=[3000])
    return Sandbox.objects.create(repo=repo, image=image, state=State.PROVISIONING, backend="local", pooled=pooled)


def dev_services(box: Sandbox, shares_host_network: bool) -> dict:
    env = bridge_env(box, "token", synced=False, shares_host_network=shares_host_network)
    return json.loads(env["INSPECT_SERVICES"])["dev"]


@pytest.mark.parametrize(("pooled", "shares_host_network", "after_claim"), [
    (True, True, True),  # its dev server would hold port 3000 that a session's sandbox of the repo needs
    (False, True, False),  # started for a session: at once
    (True, False, False),  # a network of its own (Modal): the pool keeps it fully warm
])
def test_a_pooled_sandbox_on_the_hosts_network_starts_its_dev_servers_once_claimed(pooled, shares_host_network,
                                                                                  after_claim):
    assert dev_services(sandbox(pooled), shares_host_network) == {
        "commands": ["npm run dev"], "ports": [3000], "after_claim": after_claim}



def test_opencode_gets_a_model_token_and_only_the_bridge_its_own(settings):
    """What the agent's tools can read (OpenCode's config) opens model calls and nothing else."""
    settings.MODEL_PROVIDERS = [{"name": "local", "kind": "openai", "label": "Local",
                                 "base_url": "http://127.0.0.1:9/v1", "models": ["scripted"]}]
    box = sandbox(pooled=False)
    token, model_token = box.issue_token(), box.issue_model_token()
    env = bridge_env(box, token, synced=False, model_token=model_token)
    assert env["INSPECT_SANDBOX_TOKEN"] == token
    assert model_token in env["INSPECT_OPENCODE_CONFIG"] and token not in env["INSPECT_OPENCODE_CONFIG"]
    box.state = State.RUNNING
    box.save()
    assert Sandbox.live_id_for_model_token(model_token) == box.pk
    assert Sandbox.live_id_for_model_token(token) is None  # the bridge's token makes no model calls
    assert Sandbox.from_token(model_token) is None  # and the model token opens no bridge socket
    assert Sandbox.from_token(token) == box


class RecordingBackend:
    """Takes the bridge's start: what the sandbox's record said by then is what matters here."""
    shares_host_network = True

    def __init__(self):
        self.started: list[tuple[str, dict]] = []

    def start_service(self, ref: str, name: str, command: str, env: dict) -> None:
        self.started.append((name, Sandbox.objects.get(backend_ref=ref).services))

    def control_plane_url(self, ref: str) -> str:
        return ""  # the configured one


@pytest.mark.parametrize("wanted", [True, False])
def test_vs_code_is_recorded_as_starting_with_its_facts_before_the_bridge_runs(settings, wanted):
    """So VS Code's page can be answered before the bridge first reports (ide/workbench_page.py)."""
    settings.SANDBOX_WORKSPACE_SERVICES = wanted
    box = sandbox(pooled=False)
    box.backend_ref = "ref-1"
    box.save()
    backend = RecordingBackend()
    start_bridge(backend, box, synced=False)
    [(name, services)] = backend.started
    assert name == "bridge"
    if not wanted:
        assert services == {}
        return
    product = json.loads((vscode_dir() / "product.json").read_text())
    assert services == {"ide": {"state": "starting", "port": None, "reason": "", "vscode": {
        "commit": product["commit"], "folder": "/home/agent/workspace",
        "data": "/home/agent/.local/share/code-server"}}}


def test_the_bridge_dials_the_control_plane_where_its_sandbox_reaches_it(settings):
    """A local sandbox whose dev server listens on the control plane's port reaches it at another one."""
    settings.SANDBOX_CONTROL_PLANE_URL = "http://127.0.0.1:8000"
    box = sandbox(pooled=False)
    assert bridge_env(box, "t", synced=False)["INSPECT_CONTROL_PLANE_URL"] == "http://127.0.0.1:8000"
    moved = bridge_env(box, "t", synced=False, control_plane_url="http://127.0.0.1:40100")
    assert moved["INSPECT_CONTROL_PLANE_URL"] == "http://127.0.0.1:40100"
