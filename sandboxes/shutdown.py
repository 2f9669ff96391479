"""What happens to this machine's sandboxes when `make run` stops: their work is saved and they are stopped,
unless KEEP_SANDBOXES_ON_STOP says to leave them running (the next start then adopts those whose bridges
reconnect, and reaps the rest: lifecycle.reap_decision)."""

import logging
import time

from sandboxes import provisioning
from sandboxes.lifecycle import State
from sandboxes.models import Sandbox

log = logging.getLogger(__name__)


def stop_local_sandboxes(deadline: float) -> list[str]:
    """Save the work of every live local sandbox that serves a session and stop it, pooled ones first (nothing
    to save), until `deadline` (time.monotonic()). Those not reached by then are left running for the next
    start. Returns what was done, a line per sandbox."""
    done = []
    live = Sandbox.objects.filter(backend="local", state__in=State.LIVE).order_by("-pooled", "created_at")
    for sandbox in live:
        if time.monotonic() >= deadline:
            done.append(f"{sandbox.pk}: left running (no time left), the next start adopts or reaps it")
            continue
        try:
            if not sandbox.pooled and sandbox.state in (State.READY, State.RUNNING):
                provisioning.take_snapshot(sandbox.pk)
            provisioning.terminate(sandbox.pk, "the platform stopped; its work was saved" if not sandbox.pooled
                                   else "the platform stopped")
            done.append(f"{sandbox.pk}: {'stopped' if sandbox.pooled else 'saved and stopped'}")
        except Exception:
            log.exception("sandbox %s: could not be saved and stopped", sandbox.pk)
            done.append(f"{sandbox.pk}: failed, see the log; the next start adopts or reaps it")
    return done
