"""Database rows several test packages start from (no backend runs behind them)."""

from django.utils import timezone

from sandboxes.models import Repo, RepoImage


def repo_with_image(name: str = "demo") -> Repo:
    """A repo whose current image is ready (a row only)."""
    repo = Repo.objects.create(name=name, clone_url=f"https://example.com/{name}.git")
    RepoImage.objects.create(repo=repo, status=RepoImage.Status.READY, backend="local", backend_ref="img",
                             commit_sha="abc123", finished_at=timezone.now())
    return repo
