"""The extension's server side: tokens minted on the connect page and revoked on the tokens page, the API with
its CORS for the extension's origin alone, the staging URL mapping, and every bad request a clear JSON error that
changes nothing."""

import json

import pytest
from django.test import Client

from extension.models import ExtensionToken, StagingSite
from sandboxes.models import Repo
from sessions.models import Session
from tests.support.rows import login, owned_session

pytestmark = pytest.mark.django_db

EXTENSION_ID = "abcdefghijklmnopabcdefghijklmnop"
ORIGIN = f"chrome-extension://{EXTENSION_ID}"


@pytest.fixture(autouse=True)
def extension_id(settings):
    settings.EXTENSION_ID = EXTENSION_ID


@pytest.fixture(autouse=True)
def provider(settings):
    settings.MODEL_PROVIDERS = [{"name": "scripted", "kind": "openai", "label": "Scripted",
                                 "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test", "models": ["scripted"]}]


@pytest.fixture
def secret(user) -> str:
    """A token connected the way a person connects one: the connect page's POST."""
    page = login(Client(), user).post("/extension/connect", {"name": "Work laptop"})
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    return page.context["secret"]


def call(method: str, path: str, secret: str | None = None, body=None, origin: str | None = ORIGIN):
    headers = {}
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    client = Client()
    if method == "GET":
        return client.get(path, **headers)
    if method == "OPTIONS":
        return client.options(path, **headers)
    return client.post(path, data or "", content_type="application/json", **headers)


def test_a_connected_extension_creates_a_session_with_its_context_and_follows_it(user, repo, secret):
    stored = ExtensionToken.objects.get()
    assert stored.name == "Work laptop" and secret.startswith("ixt_") and secret not in stored.token_hash
    context = {"components": [{"name": "App"}, {"name": "Checkout", "source": "src/Checkout.tsx:42"}]}
    created = call("POST", "/extension/api/sessions", secret, {"repo": repo.pk, "prompt": "Fix it", "context": context})
    assert created.status_code == 201, created.content
    assert created["Access-Control-Allow-Origin"] == ORIGIN
    session = Session.objects.get(pk=created.json()["id"])
    assert session.creator == user and session.prompts.get().context == context
    followed = call("GET", f"/extension/api/sessions/{session.pk}", secret)
    assert followed.status_code == 200 and followed.json()["status"] == session.status
    assert ExtensionToken.objects.get().last_used_at is not None


def test_the_preflight_and_cors_answer_the_extensions_origin_alone(secret):
    preflight = call("OPTIONS", "/extension/api/sessions")
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    other = call("GET", "/extension/api/repos", secret, origin="https://evil.example")
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other
    another_extension = call("GET", "/extension/api/repos", secret, origin="chrome-extension://" + "z" * 32)
    assert another_extension.status_code == 403


def test_a_revoked_or_unknown_token_gets_401_and_the_panel_is_told_to_reconnect(user, repo, secret):
    token = ExtensionToken.objects.get()
    assert login(Client(), user).post(f"/extension/tokens/{token.pk}/revoke").status_code == 302
    for presented in (secret, None, "ixt_not-a-token", "sk-something-else", "ixt_" + "x" * 500):
        answer = call("POST", "/extension/api/sessions", presented, {"repo": repo.pk, "prompt": "hi"})
        assert answer.status_code == 401 and "connect it again" in answer.json()["error"]
    assert not Session.objects.exists()


def test_a_person_revokes_only_their_own_tokens(user, other_user, secret):
    token = ExtensionToken.objects.get()
    assert login(Client(), other_user).post(f"/extension/tokens/{token.pk}/revoke").status_code == 404
    assert ExtensionToken.objects.get().revoked_at is None
    listing = login(Client(), user).get("/extension/tokens")
    assert b"Work laptop" in listing.content and secret.encode() not in listing.content


@pytest.mark.parametrize("body, says", [
    ("{not json", "not JSON"),
    ("[1]", "JSON object"),
    ({"prompt": "hi"}, '"repo"'),
    ({"repo": True, "prompt": "hi"}, '"repo"'),
    ({"repo": 999999, "prompt": "hi"}, "No such repo"),
    ({"repo": "REPO", "prompt": ""}, "needs some text"),
    ({"repo": "REPO", "prompt": "x" * 100_001}, "at most"),
    ({"repo": "REPO", "prompt": "hi", "context": [1]}, "JSON object"),
    ({"repo": "REPO", "prompt": "hi", "model": 5}, '"model"'),
])
def test_bad_requests_get_a_clear_json_error_and_change_nothing(repo, secret, body, says):
    if isinstance(body, dict) and body.get("repo") == "REPO":
        body = {**body, "repo": repo.pk}
    answer = call("POST", "/extension/api/sessions", secret, body)
    assert answer.status_code == 400 and says in answer.json()["error"], answer.content
    assert answer["Access-Control-Allow-Origin"] == ORIGIN  # the panel can read why
    assert not Session.objects.exists()
    assert call("GET", "/extension/api/sessions", secret).status_code == 405


def test_repos_the_person_may_not_use_and_others_sessions_are_out_of_reach(user, other_user, repo, secret):
    secret_repo = Repo.objects.create(name="secret", clone_url="https://example.com/secret.git",
                                      access=Repo.Access.LISTED)
    refused = call("POST", "/extension/api/sessions", secret, {"repo": secret_repo.pk, "prompt": "hi"})
    assert refused.status_code == 400 and "No such repo" in refused.json()["error"]
    theirs = owned_session(repo, other_user)
    theirs.add_member(user, "member")  # shared with them: still not one the extension follows (not theirs)
    assert call("GET", f"/extension/api/sessions/{theirs.pk}", secret).status_code == 404
    names = [r["name"] for r in call("GET", "/extension/api/repos", secret).json()["repos"]]
    assert names == ["demo"]


def test_a_staging_url_preselects_its_repo(repo, secret):
    StagingSite.objects.create(repo=repo, url_pattern="https://*.staging.example.com/*")
    found = call("GET", "/extension/api/repos?url=https://shop.staging.example.com/cart", secret).json()
    assert found["for_url"] == repo.pk
    assert call("GET", "/extension/api/repos?url=https://shop.example.com/cart", secret).json()["for_url"] is None
    assert call("GET", "/extension/api/repos?url=" + "a" * 3000, secret).status_code == 400
    # A pattern's dots are dots: evil-staging.example.com is not *.staging.example.com.
    assert call("GET", "/extension/api/repos?url=https://xstaging.example.com.evil/", secret).json()["for_url"] is None


def test_without_an_extension_id_the_connect_page_says_so(user, settings):
    settings.EXTENSION_ID = ""
    page = login(Client(), user).get("/extension/connect")
    assert b"EXTENSION_ID" in page.content and b'id="connect"' not in page.content
