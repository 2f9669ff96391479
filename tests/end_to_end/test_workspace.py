"""The workspace in a real Chromium: VS Code, the desktop and the preview from a real sandbox."""


import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from bridge.protocol import SANDBOX_WORKSPACE
from bridge.services import free_port_in
from ide import workspace_hosts
from sandboxes import builds
from sandboxes.backends import get_backend
from sessions.models import Session

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


def dev_server_port() -> int:
    """A free port below the kernel's ephemeral range, as real dev servers use (3000, 5173, ...): one
    from free_port() could become some connection's local port before the dev server binds it."""
    return free_port_in((20000, 32000))


@pytest.fixture
def workspace(platform, settings, git_repo):
    """The platform with VS Code and the desktop on, and a repo whose dev server serves site/."""
    live, repo = platform
    settings.SANDBOX_WORKSPACE_SERVICES = True
    port = dev_server_port()
    git_repo.commit({"site/index.html": "<h1>Demo app v1</h1>\n"}, "a page")
    repo.start_commands = f"python3 -m http.server {port} --bind 127.0.0.1 --directory site"
    repo.preview_ports = str(port)
    repo.save()
    assert builds.run_build(repo.request_build()[0].pk).status == "ready"
    return live, repo, port


def sign_in(page, live, username: str) -> None:
    User.objects.create_user(username, f"{username}@example.com", "correct-horse-battery")
    page.goto(live.browser_url + "/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")


def service_url(live, session_id: int, service: str) -> str:
    """Where a service's frame ends up: on the session's own host, on the platform's port (the page's frames
    get there through /sessions/<id>/open/<service>/ and the ticket exchange, ide/workspace_hosts.py)."""
    return f"http://s-{session_id}.{settings.WORKSPACE_HOST}:{live.port}/w/{session_id}/{service}/"


def frame_url(page, selector: str) -> str:
    """The address of the document in a frame of the page (cross-origin: Playwright's frame objects)."""
    return page.locator(selector).element_handle().content_frame().url


def start_session(page, live, repo, prompt: str) -> Session:
    page.goto(live.browser_url + "/sessions/new")
    page.select_option("#id_repo", str(repo.pk))
    page.fill("#id_prompt", prompt)
    page.click("#create")
    page.wait_for_url("**/sessions/*/")
    return Session.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))


def test_vs_code_desktop_preview_and_screenshots_from_the_sandbox(workspace, page):
    live, repo, port = workspace
    page.set_viewport_size({"width": 1400, "height": 900})
    sign_in(page, live, "ada")
    session = start_session(page, live, repo, "Please write file:notes/hello.txt")
    expect(page.locator(".tool-card").filter(has_text="write")).to_be_visible(timeout=120_000)

    # VS Code: the workbench renders in its frame and opens the file the agent wrote.
    page.click("#tab-ide")
    expect(page.locator('#tab-ide')).to_have_attribute("data-state", "ready", timeout=90_000)
    ide = page.frame_locator("#ide-frame")
    expect(ide.locator(".monaco-workbench")).to_be_visible(timeout=60_000)
    assert frame_url(page, "#ide-frame").startswith(service_url(live, session.pk, "ide"))
    ide.locator(".explorer-folders-view .monaco-list-row").filter(has_text="notes").click()
    ide.locator(".explorer-folders-view .monaco-list-row").filter(has_text="hello.txt").click()
    expect(ide.locator(".editor-instance .view-lines")).to_contain_text("Hello from the scripted model!")

    # The desktop: noVNC connects and its canvas shows the screen.
    page.click("#tab-desktop")
    expect(page.locator("#desktop-screen")).to_have_attribute("data-state", "connected", timeout=60_000)
    canvas = page.locator("#desktop-screen canvas")
    assert canvas.evaluate("c => [c.width, c.height]") == [1280, 800]
    # Not an empty frame: the desktop's Chromium window draws many colours (the preview page, its toolbar).
    colours = """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                         const seen = new Set();
                         for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
                         return seen.size; }"""
    page.wait_for_function(f"() => ({colours})(document.querySelector('#desktop-screen canvas')) > 10")

    # The preview: the dev server's page; after the agent changed it, a reload shows the change.
    page.click("#tab-preview")
    preview = page.frame_locator("#preview-frame")
    expect(preview.locator("h1")).to_have_text("Demo app v1", timeout=60_000)
    assert frame_url(page, "#preview-frame") == service_url(live, session.pk, f"preview-{port}")
    page.fill("#prompt-input", "Please write file:site/index.html")
    page.click("#send")
    expect(page.locator(".tool-card").filter(has_text="site/index.html")).to_be_visible(timeout=60_000)
    expect(page.locator("#stop")).to_be_hidden(timeout=60_000)
    page.click("#preview-reload")
    expect(preview.locator("body")).to_contain_text("Hello from the scripted model!")

    # Screenshots: one asked for from the page, one the agent takes with its tool; both in the timeline.
    page.click("#tab-desktop")
    page.click("#desktop-screenshot")
    shots = page.locator("#timeline .screenshot img")
    expect(shots).to_have_count(1, timeout=30_000)
    page.fill("#prompt-input", f"Take a screenshot url:http://127.0.0.1:{port}/")
    page.click("#send")
    expect(shots).to_have_count(2, timeout=90_000)
    for shot in shots.all():
        shot.scroll_into_view_if_needed()
        expect(shot).to_have_js_property("complete", True)
        assert shot.evaluate("img => img.naturalWidth") == 1280
    assert session.artifacts.count() == 2
    assert set(session.artifacts.values_list("taken_by", flat=True)) == {"ada", "agent"}

    # Somebody else is refused on every proxied path: the platform gives her no way onto the session's host,
    # which takes neither her sign-in to the platform nor a workspace cookie of her own; and the platform's
    # own origin serves no workspace path at all.
    eve = User.objects.create_user("eve", "eve@example.com", "correct-horse-battery")
    session_host = {"Host": f"s-{session.pk}.{settings.WORKSPACE_HOST}:{live.port}"}
    her_cookie = f"{workspace_hosts.COOKIE_NAME}={workspace_hosts.cookie_value(eve, session.pk)}"
    with httpx.Client(base_url=live.url, follow_redirects=False) as outsider:
        form = outsider.get("/accounts/login/")
        outsider.post("/accounts/login/", data={
            "login": "eve", "password": "correct-horse-battery",
            "csrfmiddlewaretoken": form.cookies.get("csrftoken") or outsider.cookies.get("csrftoken"),
        }, headers={"Referer": live.url + "/accounts/login/"})
        assert "sessionid" in outsider.cookies
        for service in ("ide", "desktop", f"preview-{port}"):
            assert outsider.get(f"/sessions/{session.pk}/open/{service}/").status_code == 404
            assert outsider.get(f"/sessions/{session.pk}/open/{service}/?socket=1").status_code == 404
            assert outsider.get(f"/w/{session.pk}/{service}/").status_code == 404
            assert outsider.get(f"/w/{session.pk}/{service}/", headers=session_host).status_code == 403
            assert outsider.get(f"/w/{session.pk}/{service}/",
                                headers={**session_host, "Cookie": her_cookie}).status_code == 403
        artifact = session.artifacts.first()
        assert outsider.get(f"/sessions/{session.pk}/artifacts/{artifact.pk}/").status_code == 404

    # Reaching VS Code's or the desktop's port is not enough: without the sandbox's service secret, which only
    # the platform's proxy adds, code-server sends to its login page (that no password opens) and websockify
    # refuses the handshake. Tried from inside the sandbox itself, where the ports are.
    sandbox = Session.objects.get(pk=session.pk).sandbox
    ports = {name: sandbox.services[name]["port"] for name in ("ide", "desktop")}
    backend = get_backend(sandbox.backend)
    status = "curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {headers} 'http://127.0.0.1:{port}/{query}'"
    query = {"ide": f"?folder={SANDBOX_WORKSPACE}", "desktop": ""}
    handshake = ("-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
                 "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Protocol: binary'")
    tries = {
        ("ide", ""): "302",
        ("ide", "-H 'Cookie: code-server-session=guess'"): "302",
        ("ide", f"-H 'Cookie: code-server-session={sandbox.service_secret()}'"): "200",
        ("desktop", handshake): "403",
        ("desktop", handshake + " -H 'Cookie: inspect-desktop-secret=guess'"): "403",
    }
    for (service, headers), expected in tries.items():
        answer = backend.exec(sandbox.backend_ref, status.format(headers=headers, port=ports[service],
                                                                          query=query[service]), timeout=15)
        assert answer.output.strip() == expected, (service, headers, answer.output)


def test_a_failed_dev_server_shows_why_and_is_restarted_from_the_page(workspace, page, settings):
    live, repo, port = workspace
    settings.SANDBOX_WORKSPACE_SERVICES = False  # only the dev server here
    repo.start_commands = (f"test -f site/ok || {{ echo 'site/ok is missing' >&2; exit 3; }}; "
                           f"exec python3 -m http.server {port} --bind 127.0.0.1 --directory site")
    repo.save()
    assert builds.run_build(repo.request_build()[0].pk).status == "ready"
    sign_in(page, live, "ada")
    start_session(page, live, repo, "justtext hello")

    page.click("#tab-preview")
    expect(page.locator("#tab-preview")).to_have_attribute("data-state", "failed", timeout=120_000)
    expect(page.locator("#pane-preview")).to_contain_text("site/ok is missing")

    page.fill("#prompt-input", "Please write file:site/ok")
    page.click("#send")
    expect(page.locator(".tool-card").filter(has_text="site/ok")).to_be_visible(timeout=60_000)
    page.click(f'.restart[data-restart="preview-{port}"]')
    expect(page.locator("#tab-preview")).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text("Demo app v1")

    # No desktop in this sandbox: asking for its screenshot says why there is none.
    page.evaluate("window.inspectSession.send({type: 'screenshot', target: 'desktop'})")
    expect(page.locator("#timeline .note-error")).to_contain_text(
        "Screenshot of the desktop failed: the desktop is not running", timeout=30_000)
