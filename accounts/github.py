"""GitHub's API as sign-up needs it: whether a person is an active member of an organisation.

GITHUB_URL points sign-in and every API call at one GitHub: github.com (its API at api.github.com) or a GitHub
Enterprise Server (its API at <GITHUB_URL>/api/v3), the rule allauth's GitHub provider follows too."""

import logging
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)
PUBLIC_GITHUB = ("https://github.com", "http://github.com")


def api_url() -> str:
    """GitHub's API for GITHUB_URL. Plain http only on this machine's loopback: the person's token is sent to it."""
    web = settings.GITHUB_URL.rstrip("/")
    if web in PUBLIC_GITHUB:
        return "https://api.github.com"
    parts = urlsplit(web)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")):
        raise ValueError(f"GITHUB_URL must be https:// (it is {web!r}): people's GitHub tokens are sent there")
    return f"{web}/api/v3"


def active_member_of(token: str, orgs: list[str]) -> str | None:
    """The first of `orgs` whose active member the token's person is (GitHub's /user/memberships/orgs/{org}, which
    needs the read:org scope), or None. A GitHub that does not answer counts as no: sign-up stays closed."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    with httpx.Client(base_url=api_url(), headers=headers, timeout=10) as client:
        for org in orgs:
            try:
                answer = client.get(f"/user/memberships/orgs/{quote(org, safe='')}")
            except httpx.HTTPError as error:
                logger.warning("GitHub did not answer whether someone is in %s: %s", org, type(error).__name__)
                return None
            if answer.status_code == 200 and membership_state(answer) == "active":
                return org
            if answer.status_code not in (200, 404):  # e.g. 403: the organisation has not approved this OAuth app
                logger.warning("GitHub answered %s when asked whether someone is in %s", answer.status_code, org)
    return None


def membership_state(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    return body.get("state", "") if isinstance(body, dict) else ""
