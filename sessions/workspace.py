"""The workspace around a session: the state of its sandbox's services, restarting them, screenshots.

The bridge reports each service (`service` events); the sandbox keeps the latest report per
service (Sandbox.services), which the workspace proxy (ide app) reads to find where to connect.
"""

import re
import struct

from django.core.files.base import ContentFile
from django.db import transaction

from bridge.protocol import SERVICE_NAME, SERVICE_PORTS, SERVICE_STATES
from sandboxes.bridge_channel import send_to_bridge
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox
from sessions.events import append_event
from sessions.models import Artifact, Session

SCREENSHOT_TARGET = re.compile(r"^(desktop|preview-\d{1,5})$")
MAX_SCREENSHOT_BYTES = 10 * 1024 * 1024
MAX_REASON_CHARS = 2000
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SANDBOX_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,500}$")


def clean_service_report(sandbox: Sandbox, data: dict) -> dict:
    """A bridge's service report, checked; ValueError when it is not one.

    The proxy connects wherever a report's port points, and a bridge is the sandbox's (untrusted)
    code: a preview must be one of the repo's own preview ports, and VS Code's and the desktop's
    ports (free ports the bridge got from the kernel) must be ephemeral ones, so no report can aim
    the proxy at a service of the host (the database, Redis, the control plane itself)."""
    name, state, port = data.get("name"), data.get("state"), data.get("port")
    if not isinstance(name, str) or not SERVICE_NAME.match(name):
        raise ValueError(f"Unknown service name {name!r}.")
    if state not in SERVICE_STATES:
        raise ValueError(f"Unknown service state {state!r}.")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise ValueError("A service's port is a number from 1 to 65535, or null.")
    if name.startswith("preview-"):
        preview = int(name.removeprefix("preview-"))
        if preview not in (sandbox.image.forward_ports or []):
            raise ValueError(f"Port {preview} is not one of the repo's preview ports.")
        if port not in (None, preview):
            raise ValueError(f"{name} must report port {preview}.")
    elif port is not None and not SERVICE_PORTS[0] <= port <= SERVICE_PORTS[1]:
        raise ValueError(f"{name} must listen on a port from {SERVICE_PORTS[0]} to {SERVICE_PORTS[1]}.")
    report = {"name": name, "state": state, "port": port, "reason": str(data.get("reason") or "")[:MAX_REASON_CHARS]}
    vscode = clean_vscode_facts(data.get("vscode")) if name == "ide" else None
    if vscode:
        report["vscode"] = vscode
    return report


def clean_vscode_facts(facts: object) -> dict | None:
    """VS Code's commit and paths as the bridge reports them (ide/workbench_page.py renders its page from
    them before code-server is up), or None when they are not plainly a commit and two absolute paths."""
    if not isinstance(facts, dict):
        return None
    commit, folder, data = facts.get("commit"), facts.get("folder"), facts.get("data")
    if not (isinstance(commit, str) and COMMIT.match(commit)):
        return None
    if not all(isinstance(p, str) and SANDBOX_PATH.match(p) for p in (folder, data)):
        return None
    return {"commit": commit, "folder": folder, "data": data}


def record_service(sandbox: Sandbox, report: dict) -> None:
    with transaction.atomic():
        locked = Sandbox.objects.select_for_update().filter(pk=sandbox.pk).first()
        if locked is None:
            return
        services = dict(locked.services)
        services[report["name"]] = {k: v for k, v in report.items() if k != "name"}
        Sandbox.objects.filter(pk=sandbox.pk).update(services=services)
        sandbox.services = services


def services_ended(session: Session, sandbox: Sandbox) -> None:
    """The sandbox ended: its services with it (the page stops showing them as ready)."""
    services = Sandbox.objects.filter(pk=sandbox.pk).values_list("services", flat=True).first() or {}
    for name in sorted(services):
        append_event(session.pk, "service", {"name": name, "state": "stopped", "port": None,
                                             "reason": "the sandbox ended"},
                     bridge_event_id=f"service-ended:{sandbox.pk}:{name}")


def replay_services(session: Session, sandbox: Sandbox) -> None:
    """A session that takes over a running sandbox (from the pool) learns its services' states."""
    for name, report in sorted(sandbox.services.items()):
        append_event(session.pk, "service", {"name": name, **report})


def latest_service_events(session: Session) -> dict[str, dict]:
    """Each service's latest `service` event in the session's log, as the page replays it:
    {name: {"state", "reason", "seq"}}. The page renders them at once instead of after the replay."""
    latest: dict[str, dict] = {}
    for seq, data in session.events.filter(kind="service").order_by("seq").values_list("seq", "data"):
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            latest[data["name"]] = {"state": data.get("state"), "reason": data.get("reason") or "", "seq": seq}
    return latest


def services_now(session: Session, sandbox: Sandbox) -> dict[str, dict]:
    """The page's starting point for a session whose live sandbox is `sandbox`: each service's latest
    event, with the sandbox's own record where it says otherwise (VS Code recorded as starting before the
    bridge reported it, see sandboxes/bridge_launch.expect_vscode; a service of an earlier sandbox)."""
    latest = latest_service_events(session)
    for name, report in sandbox.services.items():
        logged = latest.get(name, {"seq": 0})
        if logged.get("state") != report.get("state"):
            latest[name] = {"state": report.get("state"), "reason": report.get("reason") or "", "seq": logged["seq"]}
    return latest


def live_sandbox(session: Session) -> Sandbox:
    sandbox = session.sandbox
    if sandbox is None or sandbox.state not in State.LIVE:
        raise ValueError("The session has no running sandbox; send a prompt to start one.")
    return sandbox


def restart_service(session: Session, name: str) -> None:
    if not isinstance(name, str) or not SERVICE_NAME.match(name):
        raise ValueError('"name" must be a service: ide, desktop or preview-<port>.')
    sandbox = live_sandbox(session)
    if name not in sandbox.services:
        raise ValueError(f"This sandbox has no service {name!r}.")
    send_to_bridge(sandbox.pk, {"name": "restart_service", "service": name})


def request_screenshot(session: Session, user, target: str) -> None:
    if not isinstance(target, str) or not SCREENSHOT_TARGET.match(target):
        raise ValueError('"target" must be desktop or preview-<port>.')
    sandbox = live_sandbox(session)
    send_to_bridge(sandbox.pk, {"name": "screenshot", "target": target, "taken_by": user.get_username()})


def png_dimensions(image: bytes) -> tuple[int, int]:
    if len(image) < 24 or image[:8] != b"\x89PNG\r\n\x1a\n" or image[12:16] != b"IHDR":
        raise ValueError("A screenshot must be a PNG image.")
    return struct.unpack(">II", image[16:24])


def store_screenshot(sandbox: Sandbox, image: bytes, source: str, taken_by: str) -> Artifact:
    """Keep a screenshot the sandbox took and show it in its session's timeline."""
    if len(image) > MAX_SCREENSHOT_BYTES:
        raise ValueError(f"A screenshot is at most {MAX_SCREENSHOT_BYTES // 2**20} MB.")
    width, height = png_dimensions(image)
    session = Session.objects.filter(sandbox=sandbox).first()
    if session is None:
        raise LookupError("This sandbox serves no session.")
    artifact = Artifact(session=session, kind=Artifact.Kind.SCREENSHOT, content_type="image/png",
                        size_bytes=len(image), source=source[:500], taken_by=taken_by[:150] or "agent",
                        width=width, height=height)
    artifact.file.save("screenshot.png", ContentFile(image), save=False)
    with transaction.atomic():
        artifact.save()
        append_event(session.pk, "screenshot", {
            "artifact_id": artifact.pk, "url": artifact_url(artifact), "source": artifact.source,
            "taken_by": artifact.taken_by, "width": width, "height": height,
        })
    return artifact


def artifact_url(artifact: Artifact) -> str:
    return f"/sessions/{artifact.session_id}/artifacts/{artifact.pk}/"
