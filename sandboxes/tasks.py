"""Celery tasks: thin wrappers that carry out builds.py and provisioning.py."""

import logging

from celery import shared_task

from sandboxes import builds, provisioning
from sandboxes.models import Repo, RepoImage

logger = logging.getLogger(__name__)


@shared_task
def build_image(image_id: int) -> None:
    image = builds.run_build(image_id)
    if image is not None and image.status == RepoImage.Status.READY:
        fill_warm_pool.delay(image.repo_id)


@shared_task
def provision_sandbox(sandbox_id: str) -> None:
    provisioning.provision(sandbox_id)


@shared_task
def apply_snapshot(sandbox_id: str, snapshot_id: str) -> None:
    provisioning.apply_snapshot(sandbox_id, snapshot_id)


@shared_task
def snapshot_sandbox(sandbox_id: str) -> None:
    provisioning.take_snapshot(sandbox_id)


@shared_task
def terminate_sandbox(sandbox_id: str, reason: str = "", save_first: bool = False) -> None:
    """`save_first`: snapshot its work before (a sandbox whose bridge went silent but whose processes live)."""
    if save_first:
        try:
            provisioning.take_snapshot(sandbox_id)
        except Exception:
            logger.exception("sandbox %s: saving its work before it is reaped failed", sandbox_id)
    provisioning.terminate(sandbox_id, reason)


@shared_task
def fill_warm_pool(repo_id: int) -> None:
    repo = Repo.objects.filter(pk=repo_id).first()
    if repo is None:
        return
    created, retired = provisioning.fill_pool(repo)
    for sandbox in created:
        provision_sandbox.delay(str(sandbox.pk))
    for sandbox_id in retired:
        terminate_sandbox.delay(sandbox_id, "replaced in the warm pool")


@shared_task
def fill_warm_pools() -> None:
    for repo_id in Repo.objects.values_list("pk", flat=True):
        fill_warm_pool.delay(repo_id)


@shared_task
def reap_sandboxes() -> None:
    for sandbox_id, reason, action in provisioning.reap():
        try:
            if action == "recover":
                provisioning.recover_snapshotting(sandbox_id, reason)
            elif action == "restart_bridge":
                provisioning.restart_bridge(sandbox_id, reason)
            else:
                terminate_sandbox.delay(sandbox_id, f"reaped: {reason}", action == "save")
        except Exception:  # one sandbox's failure must not leave the others unreaped
            logger.exception("sandbox %s: carrying out %r failed", sandbox_id, action)


@shared_task
def rebuild_due_images() -> None:
    builds.fail_abandoned_builds()
    for image in builds.queue_due_rebuilds():
        build_image.delay(image.pk)


@shared_task
def collect_images() -> None:
    builds.collect_images()
