"""The session pages: the list and the new-session form (the session page itself: tests/ide/test_workspace_page.py)."""


import pytest
from django.utils import timezone
from django.utils.html import escape

from sandboxes.models import Repo, RepoImage
from sessions.models import Prompt, Session
from tests.support.rows import login, owned_session

pytestmark = pytest.mark.django_db
PROVIDERS = [{"name": "local", "kind": "openai", "label": "Local",
              "base_url": "http://127.0.0.1:9/v1", "models": ["scripted", "other"]}]


@pytest.fixture
def repo():
    repo = Repo.objects.create(name="billing-web", clone_url="file:///nowhere/billing-web")
    RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, commit_sha="a" * 40,
                             backend="local", backend_ref="x", finished_at=timezone.now())
    return repo


@pytest.fixture
def providers(settings):
    settings.MODEL_PROVIDERS, settings.DEFAULT_MODEL = PROVIDERS, ""


@pytest.mark.parametrize("path", ["/", "/sessions/new", "/sessions/1/"])
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_list_shows_only_the_users_sessions_and_staff_see_all(client, users, repo):
    owned_session(repo, users["ada"], "Ada's table fix")
    owned_session(repo, users["bob"], "Bob's secret refactor")
    page = login(client, users["ada"]).get("/").content.decode()
    assert "Ada&#x27;s table fix" in page and "Bob" not in page
    assert 'href="/sessions/new"' in page and "billing-web" in page
    staff = login(client, users["root"]).get("/").content.decode()
    assert "Ada&#x27;s table fix" in staff and "Bob&#x27;s secret refactor" in staff


def test_the_list_names_untitled_sessions_by_their_first_prompt(client, users, repo):
    session = owned_session(repo, users["ada"])
    Prompt.objects.create(session=session, author=users["ada"], text="<b>fix</b> the invoice table", position=1)
    page = login(client, users["ada"]).get("/").content.decode()
    assert "&lt;b&gt;fix&lt;/b&gt; the invoice table" in page


def test_the_list_says_when_a_repo_has_no_image(client, users, repo):
    Repo.objects.create(name="fresh-repo", clone_url="file:///nowhere/fresh")
    page = login(client, users["ada"]).get("/").content.decode()
    assert "fresh-repo" in page and "no image yet" in page


def test_the_form_offers_repos_and_models(client, users, repo, providers):
    Repo.objects.create(name="fresh-repo", clone_url="file:///nowhere/fresh")
    page = login(client, users["ada"]).get("/sessions/new").content.decode()
    assert "billing-web</option>" in page and "fresh-repo (no image yet)" in page
    assert 'value="local/scripted" selected' in page and "local/other" in page
    assert 'id="no-provider"' not in page


def test_the_form_says_when_no_model_provider_is_configured(client, users, repo, settings, provisions):
    from model_providers.providers import NO_PROVIDER_MESSAGE

    settings.MODEL_PROVIDERS = []
    client = login(client, users["ada"])
    assert escape(NO_PROVIDER_MESSAGE) in client.get("/sessions/new").content.decode()
    response = client.post("/sessions/new", {"repo": repo.pk, "model": "", "prompt": "fix it"})
    assert response.status_code == 302  # still allowed; the session reports the missing provider


def test_the_form_says_when_there_is_no_repo_yet(client, users):
    page = login(client, users["root"]).get("/sessions/new").content.decode()
    assert 'id="no-repos"' in page and "/admin/sandboxes/repo/add/" in page and "<textarea" not in page


@pytest.mark.parametrize("post, field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   \n  "}, "prompt"),
    ({"prompt": "x" * 100_001}, "prompt"),
    ({"repo": "999999"}, "repo"),
    ({"repo": "not-a-number"}, "repo"),
    ({"model": "local/unknown"}, "model"),
    ({"model": "evil/model"}, "model"),
])
def test_bad_input_shows_errors_and_creates_nothing(client, users, repo, providers, provisions, post, field):
    data = {"repo": repo.pk, "model": "local/scripted", "prompt": "fix the table", **post}
    response = login(client, users["ada"]).post("/sessions/new", data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert 'class="error"' in response.content.decode()
    assert not Session.objects.exists() and not Prompt.objects.exists() and not provisions


def test_creating_a_session_redirects_to_its_page(client, users, repo, providers, provisions,
                                                   django_capture_on_commit_callbacks):
    client = login(client, users["ada"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/sessions/new", {"repo": repo.pk, "model": "local/other", "prompt": "  fix it  "})
    session = Session.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sessions/{session.pk}/"
    assert session.creator == users["ada"] and session.model == "local/other" and session.is_member(users["ada"])
    assert list(session.prompts.values_list("text", flat=True)) == ["fix it"]
    assert len(provisions) == 1  # its sandbox is on its way
    assert client.get(response["Location"]).status_code == 200


def test_writing_a_new_sessions_prompt_warms_a_sandbox_that_the_session_then_takes(
        client, users, repo, providers, provisions, monkeypatch, django_capture_on_commit_callbacks):
    from sandboxes import tasks
    monkeypatch.setattr(tasks.fill_warm_pool, "delay", tasks.fill_warm_pool)  # run it here, as the worker would
    assert client.post("/sessions/warm", {"repo": repo.pk}).status_code == 302  # signed out: to the login page
    client = login(client, users["ada"])
    assert client.get("/sessions/warm").status_code == 405
    assert client.post("/sessions/warm", {"repo": "x"}).status_code == 400
    assert client.post("/sessions/warm", {}).status_code == 400
    assert client.post("/sessions/warm", {"repo": repo.pk + 100}).status_code == 404
    assert not provisions

    assert client.post("/sessions/warm", {"repo": repo.pk}).status_code == 204
    assert client.post("/sessions/warm", {"repo": repo.pk}).status_code == 204  # asked again while writing
    [warming] = provisions
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/sessions/new", {"repo": repo.pk, "model": "local/other", "prompt": "fix it"})
    session = Session.objects.get()
    assert str(session.sandbox_id) == warming and provisions == [warming]  # taken, not a second one started
    assert 'data-warm-url="/sessions/warm"' in client.get("/sessions/new").content.decode()
