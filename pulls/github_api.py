"""GitHub's REST API through githubkit, at the GitHub GITHUB_URL names: github.com (its API at api.github.com) or
a GitHub Enterprise Server (its API at <GITHUB_URL>/api/v3), the rule allauth's GitHub provider follows too. Its
failures become one exception whose message a person can act on."""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from githubkit import GitHub
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed

logger = logging.getLogger(__name__)
PUBLIC_GITHUB = ("https://github.com", "http://github.com")
TIMEOUT_SECONDS = 20


class GitHubError(Exception):
    def __init__(self, message: str, bad_token: bool = False):
        super().__init__(message)
        self.bad_token = bad_token  # GitHub no longer takes the token: the person must connect again


def web_url() -> str:
    """GITHUB_URL, where sign-in, pushes and token refreshes go. Plain http only on this machine's loopback:
    people's tokens are sent there."""
    web = settings.GITHUB_URL.rstrip("/")
    parts = urlsplit(web)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")):
        raise ValueError(f"GITHUB_URL must be https:// (it is {web!r}): people's GitHub tokens are sent there")
    return web


def api_url() -> str:
    """GitHub's API: api.github.com for github.com, <GITHUB_URL>/api/v3 for an Enterprise Server."""
    if settings.GITHUB_URL.rstrip("/") in PUBLIC_GITHUB:
        return "https://api.github.com"
    return f"{web_url()}/api/v3"


def client(token: str) -> GitHub:
    # No retries or waits here: a rate limit is said to the person at once, with when it ends.
    return GitHub(token, base_url=api_url() + "/", timeout=TIMEOUT_SECONDS, auto_retry=False, http_cache=False,
                  user_agent="inspect-platform")


def error_from(error: GitHubException, doing: str) -> GitHubError:
    """`error` as a message for a person: what failed (`doing`), and GitHub's own words."""
    if isinstance(error, RateLimitExceeded):
        minutes = max(1, round(error.retry_after.total_seconds() / 60))
        return GitHubError(f"GitHub's rate limit for your account is spent: {doing} again in about {minutes} "
                           "minute(s).")
    if not isinstance(error, RequestFailed):
        logger.warning("GitHub did not answer while %s: %r", doing, error)
        return GitHubError(f"GitHub did not answer ({type(error).__name__}); try {doing} again in a moment.")
    status = error.response.status_code
    message = github_message(error)
    if status == 401:
        return GitHubError(f"GitHub no longer accepts your token ({message}).", bad_token=True)
    if status == 404:
        return GitHubError(f"GitHub says the repository does not exist or your account may not see it "
                           f"({message}).")
    return GitHubError(f"GitHub refused {doing} ({status}): {message}")


def github_message(error: RequestFailed) -> str:
    """GitHub's error body: its message, with the errors' own messages (422 puts the reason there)."""
    try:
        body = error.response.json()
    except ValueError:
        return error.response.raw_response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    details = [str(item.get("message") or item.get("code") or "") for item in body.get("errors") or []
               if isinstance(item, dict)]
    return "; ".join(filter(None, [str(body.get("message") or ""), *details]))[:500]
