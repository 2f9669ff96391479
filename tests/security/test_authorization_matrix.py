"""Who gets what, on every route: a matrix of routes x roles, the routes found in Django's URL resolver and the
ASGI router themselves, so a route added later is in it without anyone adding it (and fails here until its
expected answers are known).

Roles: anonymous, a signed-in outsider, a removed member, a member, staff without the permission to see every
session, an admin (a superuser), and another sandbox (its bridge's token, no cookie). Each cell asserts the
exact status; the test also asserts that nothing a refused request could reach changed.
"""

import re
from collections.abc import Callable

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from ide import workspace_hosts
from inspect_site import asgi
from sandboxes.lifecycle import State
from sessions.models import Artifact, Session
from tests.support.rows import owned_session, repo_with_image

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ["anonymous", "outsider", "removed", "member", "staff", "admin", "other_sandbox"]
MEMBERS = {"member", "admin"}
SIGNED_IN = {"outsider", "removed", "member", "staff", "admin"}
LOGIN = "login"  # a redirect to the sign-in page
HOST = "inspect.localhost:8000"


class World:
    """One session with a member, a removed member, an artifact and a running sandbox; another session's
    sandbox for the other_sandbox role; and a signed-in client per role."""

    def __init__(self, django_user_model):
        self.repo = repo_with_image()
        users = {name: django_user_model.objects.create_user(name, f"{name}@example.com")
                 for name in ("owner", "outsider", "removed", "member", "staff")}
        users["staff"].is_staff = True
        users["staff"].save()
        users["admin"] = django_user_model.objects.create_superuser("admin", "admin@example.com")
        self.users = users
        self.session = owned_session(self.repo, users["owner"])
        self.session.add_member(users["member"])
        self.session.add_member(users["removed"])
        self.session.memberships.filter(user=users["removed"]).delete()
        image = self.repo.current_image()
        self.sandbox = self.repo.sandboxes.create(image=image, state=State.RUNNING, backend="local", backend_ref="m")
        Session.objects.filter(pk=self.session.pk).update(sandbox=self.sandbox)
        self.bridge_token, self.model_token = self.sandbox.issue_token(), self.sandbox.issue_model_token()
        self.artifact = Artifact(session=self.session, content_type="image/png", width=1, height=1,
                                 taken_by="agent", source="desktop")
        self.artifact.file.save("matrix.png", ContentFile(b"\x89PNG not really"), save=True)
        other = owned_session(self.repo, users["outsider"])
        other_sandbox = self.repo.sandboxes.create(image=image, state=State.RUNNING, backend="local",
                                                   backend_ref="o")
        Session.objects.filter(pk=other.pk).update(sandbox=other_sandbox)
        self.other_bridge_token = other_sandbox.issue_token()
        self.clients = {"anonymous": Client(), "other_sandbox": Client(
            HTTP_AUTHORIZATION=f"Bearer {self.other_bridge_token}")}
        self.cookies = {}
        for role in SIGNED_IN:
            client = Client()
            client.force_login(users[role])
            self.clients[role] = client
            self.cookies[role] = client.cookies["sessionid"].value

    def snapshot(self) -> tuple:
        """What a refused request must not change."""
        session = Session.objects.get(pk=self.session.pk)
        return (session.title, session.status, session.last_seq, session.prompts.count(),
                sorted(session.memberships.values_list("user__username", flat=True)),
                Artifact.objects.filter(session=session).count(), self.repo.sessions.count())


@pytest.fixture
def world(django_user_model) -> World:
    return World(django_user_model)


# --- Django's routes, found in the resolver ------------------------------------------------------------

def django_routes() -> list[tuple[str, str, Callable]]:
    """(route as written, its name, its view) for every route Django resolves, admin and accounts included."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                found.append((prefix + str(pattern.pattern), pattern.name or "", pattern.callback))

    walk(get_resolver().url_patterns, "")
    return found


def concrete(route: str, world: World) -> str | None:
    """The route with its parameters filled in from the world: this session, its artifact, a repo. None for a
    regex route of Django's own (the admin's catch-all, static serving) with nothing to fill in."""
    if route.startswith("^") or "(?P<" in route:
        return None
    values = {"session_id": world.session.pk, "artifact_id": world.artifact.pk,
              "image_id": world.repo.current_image().pk, "object_id": world.session.pk,
              "app_label": "agent_sessions", "service": "ide",
              "token": "no-such-token-0000", "key": "no-such-key", "uidb36": "x", "provider": "github",
              "content_type_id": "1", "user_id": world.users["member"].pk}
    def fill(match: re.Match) -> str:
        name = match.group(2)
        return str(values.get(name, 1))
    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def expected(route: str, name: str, role: str) -> set[int] | str:
    """The answer a role gets on a Django route (GET): a set of statuses, or LOGIN."""
    signed_in = role in SIGNED_IN
    if route in ("admin/login/",):
        return {200, 302}  # the admin's sign-in page: for anyone
    if route.startswith("admin/"):
        if role not in ("staff", "admin"):
            return {302}  # not staff: to the admin's own sign-in
        if route == "admin/logout/":
            return {405}  # POST only
        if role == "staff":  # staff without any permission: the index, their password and the admin's script
            return {200, 302} if route in ("admin/", "admin/password_change/", "admin/password_change/done/",
                                           "admin/jsi18n/") else {302, 403, 404, 405}
        return {200, 302, 403, 404, 405}  # admin: what the admin allows (no adding sessions, say), never a 500
    if route.startswith("accounts/"):
        if name in ("accept-invitation",):
            return {404}  # an unknown invitation opens nothing, for anyone
        # allauth's own pages: sign-in, sign-up (closed), password reset, its GitHub flow's errors and callbacks.
        return {200, 301, 302, 401, 403, 404, 405}
    if name == "screenshot-upload":  # POST-only, by a sandbox's bridge
        return {405}
    if name == "github-webhook":  # POST-only, by GitHub, with its signature
        return {405}
    if name == "extension-api-sessions":
        return {405}  # POST only: a new session, with the extension's token
    if name.startswith("extension-api-"):  # the extension's token alone counts: no cookie, no sandbox token
        return {401}
    if name in ("pwa-manifest", "pwa-service-worker", "pwa-offline"):
        return {200}  # the installable app's: for anyone (a browser fetches the manifest without cookies)
    if not signed_in:
        return LOGIN
    if name in ("push-subscribe", "push-unsubscribe"):
        return {405}  # POST only, for the signed-in person's own devices
    if name == "notification-settings":
        return {200}
    if name in ("session-detail", "session-artifact"):
        return {200} if role in MEMBERS else {404}
    if name == "session-pull-request":  # the dialog's title and description; POST opens it
        return {200} if role in MEMBERS else {404}
    if name == "open-service":
        return {302} if role in MEMBERS else {404}
    if name == "image-log":
        return {200} if role == "admin" else {403}
    if name == "session-members":  # the owner's list (the matrix's admin may see every session: they manage it)
        return {200} if role == "admin" else {403} if role == "member" else {404}
    if name in ("session-warm", "session-member", "session-join-link"):
        return {405}  # POST only
    if name in ("extension-connect", "extension-tokens"):  # one's own: the page to connect, one's tokens
        return {200}
    if name == "extension-revoke":
        return {405}  # POST only
    if name == "session-join":  # an unknown join link opens nothing, for anyone
        return {404}
    if name == "dictation-transcribe":
        return {405}  # POST only: a recording to transcribe, for anyone signed in
    if name in ("home", "session-new", "stats"):  # the stats page: the figures of the repos each may use
        return {200}
    raise AssertionError(f"no expected answers for the route {route!r} ({name}): add them to the matrix")


def test_every_django_route_answers_each_role_as_expected_and_refusals_change_nothing(world):
    routes = django_routes()
    assert len(routes) > 50  # the resolver walked: admin, accounts and the platform's own
    before = world.snapshot()
    cells, wrong = 0, []
    for route, name, _view in routes:
        path = concrete(route, world)
        if path is None:
            continue
        for role in ROLES:
            want = expected(route, name, role)
            response = world.clients[role].get(path, HTTP_HOST=HOST)
            cells += 1
            if want == LOGIN:
                ok = response.status_code == 302 and "/accounts/login/" in response["Location"]
            else:
                ok = response.status_code in want
            if not ok:
                wrong.append((path, role, response.status_code, want))
    assert wrong == [], "\n".join(map(str, wrong))
    assert world.snapshot() == before
    assert cells >= 7 * 50
    print(f"django routes x roles: {cells} cells")


# --- the ASGI router's own routes --------------------------------------------------------------------

def asgi_socket_routes() -> list[str]:
    return [str(route.pattern) for route in asgi.platform_sockets.routes]


def test_the_socket_routes_are_the_ones_this_matrix_covers():
    """A new socket route fails here until the matrix below says who may open it."""
    assert sorted(asgi_socket_routes()) == ["ws/sandbox/<uuid:sandbox_id>/", "ws/sessions/<int:session_id>/",
                                            "ws/stats/"]


def socket_outcome(path: str, headers: list) -> tuple[bool, int | None]:
    async def attempt():
        socket = WebsocketCommunicator(asgi.application, path, headers=headers)
        connected, code = await socket.connect(timeout=5)
        if connected:
            message = await socket.receive_output(timeout=2) if not await socket.receive_nothing(0.3) else None
            await socket.disconnect()
            if message and message["type"] == "websocket.close":
                return False, message.get("code")
        return connected, code

    return async_to_sync(attempt)()


def browser_headers(world: World, role: str, host: str = HOST) -> list:
    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if role in SIGNED_IN:
        headers.append((b"cookie", f"sessionid={world.cookies[role]}".encode()))
    if role == "other_sandbox":
        headers.append((b"authorization", f"Bearer {world.other_bridge_token}".encode()))
    return headers


def test_the_session_socket_lets_in_members_alone(world):
    for role in ROLES:
        connected, code = socket_outcome(f"/ws/sessions/{world.session.pk}/", browser_headers(world, role))
        assert (connected, code) == ((True, None) if role in MEMBERS else (False, 4403)), role


def test_the_stats_socket_lets_in_signed_in_people_alone(world):
    for role in ROLES:
        connected, code = socket_outcome("/ws/stats/", browser_headers(world, role))
        assert (connected, code) == ((True, None) if role in SIGNED_IN else (False, 4403)), role


def test_a_bridge_socket_opens_with_its_own_sandboxs_bridge_token_only(world):
    path = f"/ws/sandbox/{world.sandbox.pk}/"
    for role in ROLES:
        connected, _code = socket_outcome(path, [(b"host", HOST.encode()), *browser_headers(world, role)[2:]])
        assert not connected, role
    for token in (world.model_token, world.other_bridge_token):
        assert not socket_outcome(path, [(b"authorization", f"Bearer {token}".encode())])[0]
    assert socket_outcome(path, [(b"authorization", f"Bearer {world.bridge_token}".encode())])[0]


def asgi_get(path: str, headers: dict) -> httpx.Response:
    async def get():
        transport = httpx.ASGITransport(app=asgi.application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers=headers)

    return async_to_sync(get)()


def platform_headers(world: World, role: str) -> dict[str, str]:
    """What a role sends to the platform's host: its session cookie, or (another sandbox) its bridge token."""
    headers = {"Host": HOST}
    if role in SIGNED_IN:
        headers["Cookie"] = f"sessionid={world.cookies[role]}"
    if role == "other_sandbox":
        headers["Authorization"] = f"Bearer {world.other_bridge_token}"
    return headers


def test_the_model_proxy_takes_the_sandboxs_model_token_alone(world, settings):
    settings.MODEL_PROVIDERS = [{"name": "local", "kind": "openai", "label": "Local",
                                 "base_url": "http://127.0.0.1:9/v1", "models": ["scripted"]}]
    path = "/model-proxy/local/v1/models"
    for role in ROLES:
        assert asgi_get(path, platform_headers(world, role)).status_code == 401, role
    assert asgi_get(path, {"Host": HOST, "Authorization": f"Bearer {world.bridge_token}"}).status_code == 401
    # The model token gets past the check: on to the provider, which does not answer here (502).
    assert asgi_get(path, {"Host": HOST, "Authorization": f"Bearer {world.model_token}"}).status_code == 502


def test_the_branch_hand_off_takes_the_bridge_token_of_the_sessions_own_sandbox_alone(world, settings, tmp_path):
    settings.GIT_BRANCHES_DIR = tmp_path
    path = "/git/handoff.git/info/refs?service=git-receive-pack"
    for role in ROLES:
        if role != "other_sandbox":  # below
            assert asgi_get(path, platform_headers(world, role)).status_code == 401, role
    assert asgi_get(path, {"Host": HOST, "Authorization": f"Bearer {world.model_token}"}).status_code == 401
    # Another session's sandbox reaches its own session's repository, never this one's.
    other = {"Host": HOST, "Authorization": f"Bearer {world.other_bridge_token}"}
    assert asgi_get(path, other).status_code == 200 and not (tmp_path / f"{world.session.pk}.git").exists()
    bridge = {"Host": HOST, "Authorization": f"Bearer {world.bridge_token}"}
    assert asgi_get(path, bridge).status_code == 200 and (tmp_path / f"{world.session.pk}.git").exists()
    assert asgi_get("/git/handoff.git/info/refs?service=git-upload-pack", bridge).status_code == 403


def test_the_workspace_answers_members_alone_on_the_sessions_own_host(world):
    host = f"s-{world.session.pk}.{workspace_hosts.settings.WORKSPACE_HOST}:8000"
    before = world.snapshot()
    for role in ROLES:
        headers = {"Host": host, "Sec-Fetch-Site": "same-origin"}
        if role in SIGNED_IN:
            user = world.users[role]
            headers["Cookie"] = f"{workspace_hosts.COOKIE_NAME}={workspace_hosts.cookie_value(user, world.session.pk)}"
        if role == "other_sandbox":
            headers["Authorization"] = f"Bearer {world.other_bridge_token}"
        # No service runs in the matrix's sandbox: a member hears so, anybody else is refused.
        status = asgi_get(f"/w/{world.session.pk}/ide/", headers).status_code
        assert status == (503 if role in MEMBERS else 403), (role, status)
        # Without its key, the front proxy's question answers nobody; without a ticket, nobody is let in.
        assert asgi_get("/_front/route", headers).status_code == 404
        assert asgi_get(workspace_hosts.TICKET_PATH + "?next=/w/1/ide/", headers).status_code == 403
        # The platform's host serves no workspace at all.
        assert asgi_get(f"/w/{world.session.pk}/ide/", {**headers, "Host": HOST}).status_code == 404
    assert world.snapshot() == before


def test_the_workspace_socket_lets_in_members_alone(world):
    host = f"s-{world.session.pk}.{workspace_hosts.settings.WORKSPACE_HOST}:8000"
    for role in ROLES:
        headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
        if role in SIGNED_IN:
            value = workspace_hosts.cookie_value(world.users[role], world.session.pk)
            headers.append((b"cookie", f"{workspace_hosts.COOKIE_NAME}={value}".encode()))
        connected, code = socket_outcome(f"/w/{world.session.pk}/ide/", headers)
        # Members are let in, then told no service runs (4503); everybody else is refused at the handshake.
        assert (connected, code) == ((False, 4503) if role in MEMBERS else (False, 4403)), (role, connected, code)


def test_a_removed_members_user_object_is_not_trusted(world):
    """The roles are what they claim: the removed member was one, and is not any more."""
    assert not world.session.is_member(world.users["removed"])
    assert world.session.is_member(world.users["member"]) and world.session.is_member(world.users["admin"])
    assert not world.session.is_member(world.users["staff"]) and User.objects.get(username="staff").is_staff
