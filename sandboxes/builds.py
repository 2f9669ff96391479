"""Building repo images: one build at a time per repo, logs streamed to the database."""

import logging
import subprocess
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandboxes import lifecycle
from sandboxes.backends import get_backend
from sandboxes.backends.base import BackendError, ImageSpec
from sandboxes.devcontainer import DevcontainerError
from sandboxes.models import Repo, RepoImage, Sandbox, Snapshot, command_lines, port_list

logger = logging.getLogger(__name__)
LOG_FLUSH_SECONDS = 0.3
MAX_LOG_CHARS = 2_000_000


class BuildCancelled(Exception):
    """The image row is gone (its repo was deleted) while it was building."""


class LogWriter:
    """Collects a build's output and saves it every few hundred ms so the admin can follow it."""

    def __init__(self, image_id: int):
        self.image_id = image_id
        self.parts: list[str] = []
        self.size = 0
        self.last_flush = 0.0

    def __call__(self, line: str) -> None:
        if self.size < MAX_LOG_CHARS:
            self.parts.append(line)
            self.size += len(line)
        if time.monotonic() - self.last_flush >= LOG_FLUSH_SECONDS:
            self.flush()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not RepoImage.objects.filter(pk=self.image_id).update(build_log=self.text):
            raise BuildCancelled()


def image_spec(repo: Repo, image: RepoImage) -> ImageSpec:
    return ImageSpec(
        name=f"{repo.name}-{image.pk}",
        clone_url=repo.clone_url,
        branch=repo.default_branch,
        setup_commands=command_lines(repo.setup_commands),
        start_commands=command_lines(repo.start_commands),
        forward_ports=port_list(repo.preview_ports),
        env=dict(repo.env_vars),
        use_devcontainer=repo.environment_source == Repo.EnvironmentSource.DEVCONTAINER,
        build_secrets=repo.secrets_dict(),
        repo_command_secrets=repo.secrets_dict(for_repo_commands=True),
    )


def run_build(image_id: int) -> RepoImage | None:
    """Build a queued image. A failure keeps its log and leaves the previous image in service."""
    claimed = RepoImage.objects.filter(pk=image_id, status__in=RepoImage.ACTIVE).update(
        status=RepoImage.Status.BUILDING, started_at=timezone.now(), build_log="", error=""
    )
    if not claimed:
        return None  # already built, failed, or deleted with its repo
    image = RepoImage.objects.select_related("repo").get(pk=image_id)
    repo = image.repo
    backend = get_backend()
    log = LogWriter(image_id)
    started = time.monotonic()
    fingerprint = repo.setup_fingerprint()
    try:
        spec = image_spec(repo, image)
    except ValueError as e:  # a secret no configured key opens: fail now, not stay "building" for an hour
        log(f"build failed: {e}. Set the repo's secrets again in the admin.\n")
        RepoImage.objects.filter(pk=image_id).update(
            status=RepoImage.Status.FAILED, error=str(e), build_log=log.text, finished_at=timezone.now(),
            duration_seconds=time.monotonic() - started, setup_fingerprint=fingerprint)
        return RepoImage.objects.filter(pk=image_id).first()
    try:
        built = backend.build_image(spec, log)
    except BuildCancelled:
        logger.info("build of image %s cancelled: its repo was deleted", image_id)
        backend.delete_image(spec.name)
        return None
    except (BackendError, DevcontainerError, OSError) as e:
        log(f"\nbuild failed: {e}\n")
        RepoImage.objects.filter(pk=image_id).update(
            status=RepoImage.Status.FAILED, error=str(e), build_log=log.text, backend=backend.name,
            finished_at=timezone.now(), duration_seconds=time.monotonic() - started,
            setup_fingerprint=fingerprint,
        )
        return RepoImage.objects.filter(pk=image_id).first()
    saved = RepoImage.objects.filter(pk=image_id).update(
        status=RepoImage.Status.READY, backend=backend.name, backend_ref=built.ref,
        commit_sha=built.commit_sha, setup_fingerprint=fingerprint, env=built.env,
        start_commands=built.start_commands, forward_ports=built.forward_ports,
        size_bytes=built.size_bytes, build_log=log.text, finished_at=timezone.now(),
        duration_seconds=time.monotonic() - started,
    )
    if not saved:
        backend.delete_image(built.ref)  # the repo was deleted meanwhile: nothing may keep the files
        return None
    return RepoImage.objects.get(pk=image_id)


def fail_abandoned_builds(now=None) -> int:
    """Builds whose worker died never finish on their own; a late redelivery restarts them."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.IMAGE_BUILD_TIMEOUT_SECONDS + 300)
    return RepoImage.objects.filter(status=RepoImage.Status.BUILDING, started_at__lt=limit).update(
        status=RepoImage.Status.FAILED, error="the build was abandoned (its worker stopped)", finished_at=now
    )


def branch_head(repo: Repo) -> str:
    result = subprocess.run(
        ["git", "ls-remote", "--", repo.clone_url, f"refs/heads/{repo.default_branch}"],
        capture_output=True, text=True, timeout=60, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BackendError(f"cannot read the head of {repo.default_branch}: {result.stderr.strip()[-300:]}")
    return result.stdout.split()[0]


def rebuild_facts(repo: Repo) -> lifecycle.RebuildFacts:
    latest = repo.images.order_by("-queued_at").first()
    current = repo.current_image()
    return lifecycle.RebuildFacts(
        interval=repo.rebuild_interval,
        last_attempt_at=latest.queued_at if latest else None,
        build_active=repo.images.filter(status__in=RepoImage.ACTIVE).exists(),
        current_commit=current.commit_sha if current else None,
        current_fingerprint=current.setup_fingerprint if current else None,
    )


def queue_due_rebuilds(now=None) -> list[RepoImage]:
    """Queue a build for each repo whose interval passed and whose head or setup changed."""
    now = now or timezone.now()
    queued = []
    for repo in Repo.objects.all():
        facts = rebuild_facts(repo)
        if not lifecycle.rebuild_due(facts, now):
            continue
        try:
            head = branch_head(repo)
        except (BackendError, subprocess.TimeoutExpired) as e:
            logger.warning("repo %s: %s", repo.name, e)
            continue
        reason = lifecycle.rebuild_reason(facts, head, repo.setup_fingerprint())
        if reason:
            image, created = repo.request_build(reason)
            if created:
                queued.append(image)
    return queued


def collect_images() -> list[int]:
    """Delete the files of images nothing uses any more; their rows stay as history."""
    collected = []
    for repo in Repo.objects.all():
        current = repo.current_image()
        referenced = set(
            Sandbox.objects.filter(repo=repo, state__in=lifecycle.State.LIVE).values_list("image_id", flat=True)
        ) | set(Snapshot.objects.filter(repo=repo).values_list("image_id", flat=True))
        facts = [
            lifecycle.ImageFacts(img.pk, img.status, bool(img.backend_ref))
            for img in repo.images.filter(status=RepoImage.Status.READY)
        ]
        for image_id in lifecycle.images_to_collect(facts, current.pk if current else None, referenced):
            image = RepoImage.objects.get(pk=image_id)
            with transaction.atomic():
                updated = RepoImage.objects.filter(pk=image_id, status=RepoImage.Status.READY).update(
                    status=RepoImage.Status.COLLECTED
                )
            if updated:
                get_backend(image.backend).delete_image(image.backend_ref)
                collected.append(image_id)
    return collected
