"""One memory limit for a whole local sandbox, from the kernel's memory cgroup (root only; v1 or v2).

RLIMIT_AS, the fallback, limits each process's address space, not memory: Chromium (V8 reserves
a terabyte of address space it never touches) cannot start under it, and N processes may each
take the limit. A cgroup counts the memory the sandbox's processes really use, all together.
"""

import os
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")
PARENT = "inspect-sandboxes"


def root() -> tuple[Path, str] | None:
    """The parent group and the limit file's name, or None where cgroups cannot be used."""
    if os.geteuid() != 0:
        return None
    if (V1 / "memory.limit_in_bytes").exists() and os.access(V1, os.W_OK):
        return V1 / PARENT, "memory.limit_in_bytes"
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split() and os.access(V2, os.W_OK):
        return V2 / PARENT, "memory.max"
    return None


def limited_group(sandbox_ref: str, limit_bytes: int) -> Path | None:
    """The sandbox's group, made if needed, with its limit set; None when not available."""
    found = root()
    if found is None:
        return None
    parent, limit_file = found
    group = parent / sandbox_ref
    try:
        if not parent.exists():
            parent.mkdir()
        if limit_file == "memory.max":  # v2: the controller must be handed down to the children
            for folder in (V2, parent):
                (folder / "cgroup.subtree_control").write_text("+memory")
        group.mkdir(exist_ok=True)
        (group / limit_file).write_text(str(limit_bytes))
    except OSError:
        return None
    return group


def join(group: Path) -> list[str]:
    """A command prefix that moves the command into the group, then runs it."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(group)]


def remove(sandbox_ref: str, wait: float = 2.0) -> None:
    """Remove the sandbox's group once its last processes (still exiting after a kill) are gone."""
    found = root()
    if found is None:
        return
    group = found[0] / sandbox_ref
    deadline = time.monotonic() + wait
    while group.exists():
        try:
            group.rmdir()
        except OSError:  # busy: processes left in it
            if time.monotonic() > deadline:
                return  # prune() takes it later
            time.sleep(0.02)


def prune(min_age: float = 60.0) -> int:
    """Remove every empty sandbox group (of sandboxes ended without terminate()); busy ones stay,
    since the kernel refuses to remove a group with processes. Groups younger than `min_age`
    seconds stay too: one may be about to receive its sandbox's first process. Returns how many went."""
    found = root()
    removed = 0
    if found is None or not found[0].is_dir():
        return 0
    old = time.time() - min_age
    for group in found[0].iterdir():
        if group.is_dir() and group.stat().st_mtime < old:
            try:
                group.rmdir()
                removed += 1
            except OSError:
                pass
    return removed
