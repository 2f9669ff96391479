"""What a sandbox's bridge is told to run (sandboxes/bridge_launch.py)."""

import json

import pytest

from sandboxes.bridge_launch import bridge_env
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox

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

