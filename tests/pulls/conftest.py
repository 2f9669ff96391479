"""GitHub for the pulls tests: the double (tests/support/github_double.py) with Ada and Bob, the repo acme/app
(public, so image builds clone it without a token), and the platform's settings pointed at it."""

import pytest
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter

from tests.support.github_double import GitHubDouble

WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
def github(settings, tmp_path, monkeypatch):
    double = GitHubDouble()
    double.add_user("ada", 101, "Ada Lovelace", emails=[("ada@example.com", True, True)])
    double.add_user("bob", 102, "Bob Builder", emails=[("bob@example.com", True, True)])
    double.add_repo("acme/app", collaborators=["ada", "bob"], public=True)
    settings.GITHUB_URL = double.url
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {
        **settings.SOCIALACCOUNT_PROVIDERS["github"], "GITHUB_URL": double.url,
        "APP": {"client_id": double.client_id, "secret": double.client_secret},
    }}
    settings.GITHUB_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.GIT_BRANCHES_DIR = tmp_path / "branches"
    # allauth's GitHub provider reads GITHUB_URL once, at import: its URLs, as it derives them from that setting.
    urls = {"web_url": double.url, "api_url": double.api_url, "authorize_url": f"{double.url}/login/oauth/authorize",
            "access_token_url": f"{double.url}/login/oauth/access_token", "profile_url": f"{double.api_url}/user",
            "emails_url": f"{double.api_url}/user/emails"}
    for name, url in urls.items():
        monkeypatch.setattr(GitHubOAuth2Adapter, name, url)
    yield double
    double.stop()
