"""A host uid per local sandbox: SANDBOX_HOST_UID + n, one lock file per n in a folder, naming its sandbox.

Taking one is atomic by itself (O_EXCL); giving one back and releasing those of vanished sandboxes hold a lock,
so no process frees a slot another has just taken."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from sandboxes.backends.base import BackendError


class UidSlots:
    def __init__(self, folder: Path, sandboxes: Path):
        self.folder = folder  # <SANDBOX_ROOT>/uids
        self.sandboxes = sandboxes  # where a live sandbox has its folder, named by its ref
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, sandbox_ref: str, base: int) -> int:
        """A uid of the sandbox's own above `base`."""
        for n in range(1, settings.SANDBOX_UID_COUNT + 1):
            try:
                fd = os.open(self.folder / str(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as file:
                file.write(sandbox_ref)
            return base + n
        raise BackendError(f"all {settings.SANDBOX_UID_COUNT} sandbox uids are in use")

    def give_back(self, sandbox_ref: str) -> None:
        with self._lock():
            for slot in self._slots():
                if self._holder(slot) == sandbox_ref:
                    slot.unlink(missing_ok=True)

    def release_stale(self) -> None:
        """Uids of sandboxes whose folder is gone (ended without terminate(), e.g. the machine restarted). A slot
        younger than a minute may be about to get its sandbox's folder: it stays."""
        with self._lock():
            for slot in self._slots():
                ref = self._holder(slot)
                if ref is not None and not (ref and (self.sandboxes / ref).exists()) \
                        and time.time() - slot.stat().st_mtime > 60:
                    slot.unlink(missing_ok=True)

    def in_use(self) -> list[Path]:
        return list(self._slots())

    def _slots(self) -> Iterator[Path]:
        return (slot for slot in self.folder.iterdir() if slot.name.isdigit())

    @staticmethod
    def _holder(slot: Path) -> str | None:
        """The ref a slot names ("" while it is being written), or None when it vanished meanwhile."""
        try:
            return slot.read_text()
        except FileNotFoundError:
            return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
