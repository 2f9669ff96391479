"""A repo's "owner/name" on GitHub, read from its clone URL: pure functions that tests call directly."""

import re
from urllib.parse import urlsplit

NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def github_repo_from_clone_url(clone_url: str, github_url: str) -> str:
    """"owner/name" when `clone_url` points at the GitHub at `github_url` (https, ssh or scp-like
    git@host:owner/name), else "" (the repo is elsewhere: no pull requests on GitHub for it)."""
    github_host = (urlsplit(github_url).hostname or "").lower()
    if "://" in clone_url:
        parts = urlsplit(clone_url)
        host, path = (parts.hostname or "").lower(), parts.path
    elif re.fullmatch(r"[^@/\s]+@[^:/\s]+:.+", clone_url):  # git@github.com:owner/name.git
        user_host, path = clone_url.split(":", 1)
        host = user_host.split("@", 1)[1].lower()
    else:
        return ""
    if not github_host or host != github_host:
        return ""
    return valid_github_repo(path.strip("/").removesuffix(".git"))


def valid_github_repo(value: str) -> str:
    """`value` when it is "owner/name" as GitHub allows them, else ""."""
    owner, _, name = value.partition("/")
    if not NAME.fullmatch(owner) or not NAME.fullmatch(name) or name in (".", ".."):
        return ""
    return f"{owner}/{name}"
