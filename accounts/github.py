"""GitHub's API as sign-up needs it: whether a person is an active member of an organisation.

GITHUB_URL points sign-in and every API call at one GitHub (pulls/github_api.py says where its API is)."""

import logging
from urllib.parse import quote

import httpx

from pulls.github_api import api_url

logger = logging.getLogger(__name__)


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
