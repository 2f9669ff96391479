"""GitHub for the pulls tests: the double (tests/support/github_double.py) with Ada and Bob, the repo acme/app
(public, so image builds clone it without a token), and the platform's settings pointed at it."""

import pytest

from tests.support.github_double import GitHubDouble

WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
def github(settings, tmp_path):
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
    yield double
    double.stop()
