"""Database rows several test packages start from (no backend runs behind them), and a signed-in client."""

from django.utils import timezone

from sandboxes.models import Repo, RepoImage
from sessions.models import Session


def repo_with_image(name: str = "demo") -> Repo:
    """A repo whose current image is ready (a row only)."""
    repo = Repo.objects.create(name=name, clone_url=f"https://example.com/{name}.git")
    RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, backend="local", backend_ref="img",
                             commit_sha="abc123", finished_at=timezone.now())
    return repo


def owned_session(repo: Repo, owner, title: str = "", **fields) -> Session:
    """A session of `repo` that `owner` created and owns."""
    session = Session.objects.create(repo=repo, creator=owner, title=title, **fields)
    session.add_member(owner, "owner")
    return session


def login(client, user):
    """Django's test client, signed in as `user`."""
    client.force_login(user)
    return client
