"""When rows go, what they held on the backend goes too (after the transaction commits)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver

from sandboxes.backends import get_backend
from sandboxes.lifecycle import State
from sandboxes.models import RepoImage, Sandbox, Snapshot

# Sent (with `sandbox=`) after a sandbox changed state; the sessions app listens.
sandbox_phase_changed = Signal()
# Sent (with `snapshot=`) once a sandbox's work is saved; the sessions app makes it its session's latest.
snapshot_taken = Signal()
# Sent (with `sandbox=`) when a sandbox's bridge had died and a new one was started: a run it did is lost.
bridge_restarted = Signal()


@receiver(post_delete, sender=Sandbox)
def free_sandbox(sender, instance: Sandbox, **kwargs) -> None:
    if instance.backend_ref and instance.state != State.TERMINATED:
        transaction.on_commit(lambda: get_backend(instance.backend).terminate(instance.backend_ref))


@receiver(post_delete, sender=RepoImage)
def free_image(sender, instance: RepoImage, **kwargs) -> None:
    if instance.backend_ref and instance.status == RepoImage.Status.READY:
        transaction.on_commit(lambda: get_backend(instance.backend).delete_image(instance.backend_ref))


@receiver(post_delete, sender=Snapshot)
def free_snapshot(sender, instance: Snapshot, **kwargs) -> None:
    transaction.on_commit(lambda: get_backend(instance.backend).delete_snapshot(instance.backend_ref))
