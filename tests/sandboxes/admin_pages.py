"""What the admin tests (test_admin.py, test_admin_builds.py, test_views.py) share: URLs, a repo form, rows."""

from django.urls import reverse
from django.utils import timezone

from sandboxes.models import Repo, RepoImage

ADD_URL = reverse("admin:sandboxes_repo_add")
CHANGELIST_URL = reverse("admin:sandboxes_repo_changelist")


def change_url(repo: Repo) -> str:
    return reverse("admin:sandboxes_repo_change", args=[repo.pk])


def rebuild_url(repo: Repo) -> str:
    return reverse("admin:sandboxes_repo_rebuild", args=[repo.pk])


def image_url(image: RepoImage) -> str:
    return reverse("admin:sandboxes_repoimage_change", args=[image.pk])


def log_url(image_id: int, offset: int | None = None) -> str:
    url = reverse("sandboxes:image-log", args=[image_id])
    return url if offset is None else f"{url}?offset={offset}"


def repo_form(secrets: list[dict] | None = None, initial_secrets: int = 0, **fields) -> dict:
    """The POST body of the repo add/change form, with its secrets inline."""
    data = {
        "name": "shop",
        "clone_url": "https://github.com/acme/shop.git",
        "default_branch": "main",
        "environment_source": "commands",
        "setup_commands": "npm ci\n",
        "start_commands": "npm run dev\n",
        "env_vars": '{"NODE_ENV": "test"}',
        "warm_pool_size": "2",
        "rebuild_interval_minutes": "30",
        "access": "everyone",
        **fields,
    }
    secrets = secrets or []
    data |= {
        "secrets-TOTAL_FORMS": str(len(secrets)),
        "secrets-INITIAL_FORMS": str(initial_secrets),
        "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
    }
    for i, secret in enumerate(secrets):
        data |= {f"secrets-{i}-{key}": value for key, value in secret.items()}
    return data


def make_repo(name: str = "shop", **fields) -> Repo:
    return Repo.objects.create(name=name, clone_url=f"https://github.com/acme/{name}.git", **fields)


def make_image(repo: Repo, status: str = RepoImage.Status.READY, **fields) -> RepoImage:
    now = timezone.now()
    defaults = {"queued_at": now}
    if status in (RepoImage.Status.READY, RepoImage.Status.FAILED):
        defaults |= {"finished_at": now, "duration_seconds": 42.0}
    if status == RepoImage.Status.READY:
        defaults |= {"commit_sha": "0123456789abcdef" * 2 + "01234567", "size_bytes": 250_000_000,
                     "backend": "local", "backend_ref": ""}
    return RepoImage.objects.create(repo=repo, status=status, **(defaults | fields))


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]
