"""Database rows several test packages start from (no backend runs behind them), and a signed-in client."""

import json
from pathlib import Path

from django.contrib.auth.models import Permission
from django.utils import timezone

from sandboxes.models import Repo, RepoImage
from sessions.models import Session


def repo_with_image(name: str = "demo", clone_url: str = "") -> Repo:
    """A repo whose current image is ready (a row only)."""
    repo = Repo.objects.create(name=name, clone_url=clone_url or f"https://example.com/{name}.git")
    RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, backend="local", backend_ref="img",
                             commit_sha="abc123", finished_at=timezone.now())
    return repo


def owned_session(repo: Repo, owner, title: str = "", **fields) -> Session:
    """A session of `repo` that `owner` created and owns."""
    session = Session.objects.create(repo=repo, creator=owner, title=title, **fields)
    session.add_member(owner, "owner")
    return session


def may_see_every_session(user):
    """Give `user` the permission that makes them a member of every session (an admin's, not every staff's)."""
    user.user_permissions.add(Permission.objects.get(codename="see_every_session"))
    return user


def login(client, user):
    """Django's test client, signed in as `user`."""
    client.force_login(user)
    return client


def forward_port(sandbox_root: Path, ref: str, port: int, host_port: int | None = None) -> None:
    """Record that the local backend's sandbox `ref` forwards `port` to the host's `host_port` (the same by
    default), as LocalBackend.start does: rows pointing at services started by a test reach them this way."""
    network = Path(sandbox_root) / "sandboxes" / ref / "network.json"
    network.parent.mkdir(parents=True, exist_ok=True)
    inbound = json.loads(network.read_text())["inbound"] if network.exists() else {}
    inbound[str(port)] = host_port or port
    network.write_text(json.dumps({"inbound": inbound}))
