"""Service states from bridges, restarting services, and screenshots kept as session artifacts."""

import struct
import zlib

import pytest

from sandboxes import bridge_channel
from sandboxes.lifecycle import State
from sessions import bridge_events, member_requests, workspace
from sessions.consumers import invalid
from sessions.events import append_event
from sessions.models import Artifact, Session
from sessions.rate_limits import SCREENSHOTS_PER_MINUTE

pytestmark = pytest.mark.django_db


def png_image(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def upload(client, token: str, body: bytes, content_type: str = "image/png", **headers):
    return client.post("/sessions/api/screenshots/", data=body, content_type=content_type,
                       HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


# --- service reports ----------------------------------------------------------------


def preview_ports(sandbox, *ports: int) -> None:
    sandbox.image.forward_ports = list(ports)
    sandbox.image.save()


def test_a_service_report_is_kept_on_the_sandbox_and_in_the_session_log(session, make_sandbox):
    sandbox = make_sandbox()
    preview_ports(sandbox, 3000)
    session.sandbox = sandbox
    session.save()
    bridge_events.handle_bridge_event(sandbox, "e1", {"kind": "service", "name": "ide", "state": "starting",
                                                      "port": None})
    bridge_events.handle_bridge_event(sandbox, "e2", {"kind": "service", "name": "ide", "state": "ready",
                                                      "port": 41000, "reason": ""})
    bridge_events.handle_bridge_event(sandbox, "e3", {"kind": "service", "name": "preview-3000", "state": "failed",
                                                      "reason": "exited with code 1: EADDRINUSE", "port": None})
    sandbox.refresh_from_db()
    assert sandbox.services == {
        "ide": {"state": "ready", "port": 41000, "reason": ""},
        "preview-3000": {"state": "failed", "port": None, "reason": "exited with code 1: EADDRINUSE"},
    }
    logged = [e.data for e in session.events.filter(kind="service").order_by("seq")]
    assert [(d["name"], d["state"]) for d in logged] == [("ide", "starting"), ("ide", "ready"),
                                                          ("preview-3000", "failed")]


@pytest.mark.parametrize("report", [
    {"name": "../etc", "state": "ready"},
    {"name": "ide", "state": "exploded"},
    {"name": "ide", "state": "ready", "port": 70000},
    {"name": "ide", "state": "ready", "port": "8080"},
    {"name": "ide", "state": "ready", "port": True},
    # Aiming the proxy at the host's own services: the database, Redis, the control plane.
    {"name": "ide", "state": "ready", "port": 5432},
    {"name": "desktop", "state": "ready", "port": 6379},
    {"name": "preview-8000", "state": "ready", "port": 8000},  # not one of the repo's preview ports
    {"name": "preview-3000", "state": "ready", "port": 5432},  # a preview answers on its own port
])
def test_a_malformed_service_report_changes_nothing(session, make_sandbox, report):
    sandbox = make_sandbox()
    preview_ports(sandbox, 3000)
    session.sandbox = sandbox
    session.save()
    with pytest.raises(ValueError):
        bridge_events.handle_bridge_event(sandbox, "e1", {"kind": "service", **report})
    sandbox.refresh_from_db()
    assert sandbox.services == {}
    assert not session.events.exists()


VSCODE = {"commit": "409c64e0df4d53530e59c16acc2b5d5766f717b0", "folder": "/home/agent/workspace",
          "data": "/home/agent/.local/share/code-server"}


@pytest.mark.parametrize("facts, kept", [
    (VSCODE, VSCODE),
    ({**VSCODE, "commit": "409C64E0"}, None),  # not a commit
    ({**VSCODE, "folder": 'x" onload="alert(1)'}, None),  # not an absolute path
    ({**VSCODE, "data": "/home/agent/<script>"}, None),
    ({**VSCODE, "data": None}, None),
    ("409c64e0df4d53530e59c16acc2b5d5766f717b0", None),
])
def test_vscodes_commit_and_paths_are_kept_only_when_they_are_plainly_that(session, make_sandbox, facts, kept):
    """The proxy renders VS Code's page from them while code-server starts (ide/workbench_page.py)."""
    sandbox = make_sandbox()
    session.sandbox = sandbox
    session.save()
    bridge_events.handle_bridge_event(sandbox, "e1", {"kind": "service", "name": "ide", "state": "starting",
                                                      "port": None, "vscode": facts})
    bridge_events.handle_bridge_event(sandbox, "e2", {"kind": "service", "name": "desktop", "state": "starting",
                                                      "port": None, "vscode": VSCODE})
    sandbox.refresh_from_db()
    assert sandbox.services["ide"].get("vscode") == kept
    assert "vscode" not in sandbox.services["desktop"]  # only VS Code's report carries them


def test_the_page_starts_from_the_sandboxs_record_where_the_log_is_behind(session, make_sandbox):
    """VS Code recorded as starting before the bridge reported it (bridge_launch.expect_vscode), over a
    service the log last saw stopped with an earlier sandbox; the seq stays the log's, for what follows."""
    sandbox = make_sandbox()
    session.sandbox = sandbox
    session.save()
    stopped = append_event(session.pk, "service", {"name": "ide", "state": "stopped", "port": None,
                                                            "reason": "the sandbox ended"})
    append_event(session.pk, "service", {"name": "desktop", "state": "ready", "port": 41001, "reason": ""})
    sandbox.services = {"ide": {"state": "starting", "port": None, "reason": ""},
                        "desktop": {"state": "ready", "port": 41001, "reason": ""}}
    now = workspace.services_now(session, sandbox)
    assert now["ide"] == {"state": "starting", "reason": "", "seq": stopped.seq}
    assert now["desktop"]["state"] == "ready"
    sandbox.services = {"preview-3000": {"state": "starting", "port": None, "reason": "waiting"}}
    assert workspace.services_now(session, sandbox)["preview-3000"] == {"state": "starting", "reason": "waiting",
                                                                        "seq": 0}


def test_a_pooled_sandbox_keeps_its_services_and_the_session_that_claims_it_learns_them(repo, user, make_sandbox):
    pooled = make_sandbox(pooled=True)
    bridge_events.handle_bridge_event(pooled, "e1", {"kind": "service", "name": "ide", "state": "ready", "port": 41000})
    session = member_requests.create_session(repo, user, "justtext hi")
    assert session.sandbox_id == pooled.pk
    learned = session.events.filter(kind="service").get().data
    assert learned == {"name": "ide", "state": "ready", "port": 41000, "reason": ""}


def test_the_bridge_of_a_claimed_pool_sandbox_is_told_so_and_again_when_it_reconnects(
        repo, user, make_sandbox, listen, django_capture_on_commit_callbacks):
    pooled = make_sandbox(pooled=True)
    bridge = listen(bridge_channel.group_name(pooled.pk))
    with django_capture_on_commit_callbacks(execute=True):
        session = member_requests.create_session(repo, user, "justtext hi")
    assert session.sandbox_id == pooled.pk
    assert [c["name"] for c in bridge.commands()] == ["claimed", "prompt"]  # its dev servers may start now

    pooled.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        bridge_events.handle_bridge_connected(pooled)
    assert [c["name"] for c in bridge.commands()] == ["claimed", "prompt"]  # the prompt is not confirmed yet


def test_the_bridge_of_a_sandbox_started_for_its_session_is_not_told_it_was_claimed(
        session, make_sandbox, listen, django_capture_on_commit_callbacks):
    sandbox = make_sandbox(State.READY)
    Session.objects.filter(pk=session.pk).update(sandbox=sandbox)
    bridge = listen(bridge_channel.group_name(sandbox.pk))
    with django_capture_on_commit_callbacks(execute=True):
        bridge_events.handle_bridge_connected(sandbox)
    assert bridge.nothing()


@pytest.mark.parametrize("kind", ["screenshot", "status", "prompt_finished", "sandbox_phase"])
def test_a_bridge_cannot_write_what_only_the_control_plane_writes(session, make_sandbox, kind):
    sandbox = make_sandbox()
    session.sandbox = sandbox
    session.save()
    with pytest.raises(ValueError):
        bridge_events.handle_bridge_event(sandbox, "e1", {"kind": kind, "url": "/sessions/9/artifacts/1/"})
    assert not session.events.exists()


# --- restart and screenshot requests -----------------------------------------------------


def test_restart_and_screenshot_go_to_the_sessions_bridge(session, user, make_sandbox, listen,
                                                         django_capture_on_commit_callbacks):
    sandbox = make_sandbox(services={"ide": {"state": "failed", "port": None, "reason": "boom"}})
    session.sandbox = sandbox
    session.save()
    bridge = listen(bridge_channel.group_name(sandbox.pk))
    with django_capture_on_commit_callbacks(execute=True):
        workspace.restart_service(session, "ide")
        workspace.request_screenshot(session, user, "preview-3000")
    assert bridge.commands() == [
        {"name": "restart_service", "service": "ide"},
        {"name": "screenshot", "target": "preview-3000", "taken_by": "ada"},
    ]


def test_restart_needs_a_live_sandbox_with_that_service(session, user, make_sandbox):
    with pytest.raises(ValueError, match="no running sandbox"):
        workspace.restart_service(session, "ide")
    session.sandbox = make_sandbox(state=State.TERMINATED)
    with pytest.raises(ValueError, match="no running sandbox"):
        workspace.request_screenshot(session, user, "desktop")
    session.sandbox = make_sandbox(services={"ide": {"state": "ready", "port": 1, "reason": ""}})
    with pytest.raises(ValueError, match="no service 'desktop'"):
        workspace.restart_service(session, "desktop")


@pytest.mark.parametrize("message", [
    {"type": "restart_service"},
    {"type": "restart_service", "name": "rm -rf"},
    {"type": "screenshot", "target": "http://example.com/"},
    {"type": "screenshot", "target": 3},
])
def test_malformed_workspace_messages_are_refused(message):
    assert invalid(message)


# --- screenshots --------------------------------------------------------------------------


def test_a_sandbox_uploads_a_screenshot_into_its_sessions_timeline(client, session, make_sandbox):
    sandbox = make_sandbox()
    token = sandbox.issue_token()
    session.sandbox = sandbox
    session.save()
    response = upload(client, token, png_image(4, 3), HTTP_X_SCREENSHOT_SOURCE="http://127.0.0.1:3000/",
                      HTTP_X_SCREENSHOT_TAKEN_BY="agent")
    assert response.status_code == 201
    artifact = Artifact.objects.get()
    assert (artifact.session, artifact.width, artifact.height, artifact.taken_by) == (session, 4, 3, "agent")
    event = session.events.get(kind="screenshot")
    assert event.data["url"] == response.json()["url"] == f"/sessions/{session.pk}/artifacts/{artifact.pk}/"
    assert event.data["source"] == "http://127.0.0.1:3000/"


@pytest.mark.parametrize(("token", "body", "content_type", "status"), [
    ("wrong-token", png_image(), "image/png", 401),
    (None, b"GIF89a not a png at all", "image/png", 400),
    (None, png_image(), "application/json", 415),
    (None, b"", "image/png", 400),
])
def test_a_bad_upload_is_refused_and_stores_nothing(client, session, make_sandbox, token, body, content_type, status):
    sandbox = make_sandbox()
    real = sandbox.issue_token()
    session.sandbox = sandbox
    session.save()
    assert upload(client, token or real, body, content_type).status_code == status
    assert not Artifact.objects.exists()
    assert not session.events.exists()


def test_a_sandbox_uploads_at_most_its_screenshots_a_minute(client, session, make_sandbox, settings):
    sandbox = make_sandbox()
    token = sandbox.issue_token()
    session.sandbox = sandbox
    session.save()
    answers = [upload(client, token, png_image()).status_code for _ in range(SCREENSHOTS_PER_MINUTE + 2)]
    assert answers == [201] * SCREENSHOTS_PER_MINUTE + [429, 429]
    assert Artifact.objects.count() == SCREENSHOTS_PER_MINUTE
    # The model token is not the bridge's: it uploads nothing either.
    assert upload(client, sandbox.issue_model_token(), png_image()).status_code == 401


def test_an_oversized_upload_is_refused_before_it_is_read(client, session, make_sandbox):
    sandbox = make_sandbox()
    token = sandbox.issue_token()
    session.sandbox = sandbox
    session.save()
    response = client.post("/sessions/api/screenshots/", data=b"x", content_type="image/png",
                           HTTP_AUTHORIZATION=f"Bearer {token}", CONTENT_LENGTH=str(workspace.MAX_SCREENSHOT_BYTES + 1))
    assert response.status_code == 413
    assert not Artifact.objects.exists()


def test_a_terminated_sandboxs_token_uploads_nothing(client, session, make_sandbox):
    sandbox = make_sandbox()
    token = sandbox.issue_token()
    session.sandbox = sandbox
    session.save()
    sandbox.__class__.objects.filter(pk=sandbox.pk).update(state=State.TERMINATED)
    assert upload(client, token, png_image()).status_code == 401


def test_only_members_see_an_artifact(client, session, make_sandbox, user, other_user, django_user_model):
    sandbox = make_sandbox()
    session.sandbox = sandbox
    session.save()
    artifact = workspace.store_screenshot(sandbox, png_image(), "desktop", "ada")
    url = workspace.artifact_url(artifact)
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.get(url).status_code == 404
    assert client.get(f"/sessions/{session.pk + 1}/artifacts/{artifact.pk}/").status_code == 404
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == png_image()


def test_when_the_sandbox_ends_its_services_are_stopped_once(session, make_sandbox):
    sandbox = make_sandbox(services={"ide": {"state": "ready", "port": 41000, "reason": ""},
                                     "preview-3000": {"state": "failed", "port": None, "reason": "boom"}})
    session.sandbox = sandbox
    session.save()
    sandbox.__class__.objects.filter(pk=sandbox.pk).update(state=State.TERMINATED)
    bridge_events.handle_sandbox_phase(sandbox)
    bridge_events.handle_sandbox_phase(sandbox)  # told twice: logged once
    stopped = [e.data for e in session.events.filter(kind="service").order_by("seq")]
    assert stopped == [
        {"name": "ide", "state": "stopped", "port": None, "reason": "the sandbox ended"},
        {"name": "preview-3000", "state": "stopped", "port": None, "reason": "the sandbox ended"},
    ]
    assert workspace.latest_service_events(session)["ide"]["state"] == "stopped"


def test_the_page_starts_with_the_services_latest_states(client, session, make_sandbox, user):
    sandbox = make_sandbox()
    session.sandbox = sandbox
    session.save()
    for index, state in enumerate(["starting", "ready"]):
        bridge_events.handle_bridge_event(sandbox, f"e{index}", {"kind": "service", "name": "ide", "state": state,
                                                                 "port": 41000 if state == "ready" else None})
    client.force_login(user)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    seq = session.events.get(kind="service", data__state="ready").seq
    assert f'"ide": {{"state": "ready", "reason": "", "seq": {seq}}}' in page
    # The browser starts on VS Code while reading the page: through the opener, to the session's own host.
    assert f'src="/sessions/{session.pk}/open/ide/"' in page
    assert f"/w/{session.pk}/" not in page  # never the workspace's paths on the platform's origin

