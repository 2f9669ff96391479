"""Starting a sandbox's bridge: what it mounts, the environment it gets, the command that runs it."""

import json
import logging
import shlex
from pathlib import Path

from django.conf import settings

from bridge.protocol import (
    SANDBOX_HOME,
    SANDBOX_WORKSPACE,
    SERVICE_SECRET_ENV,
    TOOLS_IN_SANDBOX,
    vscode_facts,
    workspace_ports,
)
from model_providers import providers
from sandboxes.backends.base import SandboxBackend
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir

logger = logging.getLogger(__name__)
BRIDGE_SOURCE = Path(__file__).resolve().parent.parent / "bridge"  # the top-level bridge/ package
BRIDGE_COMMAND = f"exec /usr/bin/python3 {TOOLS_IN_SANDBOX}/bridge/main.py"


def bridge_mounts() -> dict[str, str]:
    """The tools folder (OpenCode, packages) and the bridge's own source, read-only."""
    return {str(TOOLS_IN_SANDBOX): str(tools_dir()), f"{TOOLS_IN_SANDBOX}/bridge": str(BRIDGE_SOURCE)}


def opencode_config(token: str, control_plane_url: str) -> dict:
    """Providers through the model proxy with this sandbox's token; none configured means OpenCode
    gets no provider and the session reports what to set (see sessions/dispatch.py start_sandbox)."""
    try:
        proxy = control_plane_url.rstrip("/") + providers.MODEL_PROXY_PATH
        return providers.opencode_config(token, proxy_base_url=proxy)
    except providers.NoModelProvider:
        return {"share": "disabled", "autoupdate": False}


def workspace_services(sandbox: Sandbox, shares_host_network: bool = False) -> dict:
    """What the bridge runs beside OpenCode: VS Code and the desktop (unless turned off) and the
    repo's dev servers with the ports they serve. Where sandboxes share the host's network, a pooled
    sandbox starts the dev servers only once a session claims it (the `claimed` command): they
    listen on the repo's fixed ports, which the sandbox a session works in needs."""
    wanted = settings.SANDBOX_WORKSPACE_SERVICES
    image = sandbox.image
    return {"ide": wanted, "desktop": wanted, "ports": workspace_ports(image.forward_ports),
            "dev": {"commands": list(image.start_commands), "ports": list(image.forward_ports),
                    "after_claim": sandbox.pooled and shares_host_network}}


def forwarded_ports(sandbox: Sandbox) -> list[int]:
    """The ports the control plane reaches in the sandbox: VS Code's, the desktop's and the previews'."""
    image = sandbox.image
    return sorted({*workspace_ports(image.forward_ports).values(), *image.forward_ports})


def bridge_env(sandbox: Sandbox, token: str, synced: bool, shares_host_network: bool = False,
               control_plane_url: str = "", model_token: str = "") -> dict[str, str]:
    """`token`: the bridge's own; `model_token`: the one OpenCode's config gets, for model calls only.
    `control_plane_url`: where this sandbox reaches the control plane, if not SANDBOX_CONTROL_PLANE_URL."""
    url = control_plane_url or settings.SANDBOX_CONTROL_PLANE_URL
    return {
        "INSPECT_SERVICES": json.dumps(workspace_services(sandbox, shares_host_network)),
        "INSPECT_CONTROL_PLANE_URL": url,
        "INSPECT_SANDBOX_ID": str(sandbox.pk),
        "INSPECT_SANDBOX_TOKEN": token,
        SERVICE_SECRET_ENV: sandbox.service_secret(),
        "INSPECT_OPENCODE_CONFIG": json.dumps(opencode_config(model_token, url)),
        "INSPECT_SYNCED": "1" if synced else "0",
        "INSPECT_TOOLS_DIR": str(TOOLS_IN_SANDBOX),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def start_bridge(backend: SandboxBackend, sandbox: Sandbox, synced: bool) -> None:
    token, model_token = sandbox.issue_token(), sandbox.issue_model_token()
    env = bridge_env(sandbox, token, synced, backend.shares_host_network,
                     backend.control_plane_url(sandbox.backend_ref), model_token=model_token)
    if workspace_services(sandbox)["ide"]:
        expect_vscode(sandbox)
    backend.start_service(sandbox.backend_ref, "bridge", BRIDGE_COMMAND, env=env)


def bridge_running(backend: SandboxBackend, sandbox: Sandbox) -> bool:
    """Whether the sandbox's bridge process runs (asked inside it, so any backend can answer)."""
    command = BRIDGE_COMMAND.removeprefix("exec ")
    probe = backend.exec(sandbox.backend_ref, f"/usr/bin/pgrep -x -f {shlex.quote(command)} >/dev/null", timeout=15)
    return probe.exit_code == 0


def expect_vscode(sandbox: Sandbox) -> None:
    """VS Code is starting with the bridge about to run: record it now, with the facts its page is rendered
    from (ide/workbench_page.py), rather than when the bridge first reports (0.2-0.6 s later), so a page
    open while the sandbox starts gets VS Code's page that much sooner. The facts are the ones the bridge
    will report: the code-server mounted is the control plane's own (bridge_mounts), in the usual layout."""
    facts = vscode_facts(tools_dir(), SANDBOX_HOME, SANDBOX_WORKSPACE)
    report = {"state": "starting", "port": None, "reason": "", **facts}
    Sandbox.objects.filter(pk=sandbox.pk).update(services={**sandbox.services, "ide": report})
    sandbox.services = {**sandbox.services, "ide": report}
