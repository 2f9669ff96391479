"""One memory limit for a whole local sandbox, from the kernel's memory cgroup (root only; v1 or v2).

RLIMIT_AS, the fallback, limits each process's address space, not memory: Chromium (V8 reserves
a terabyte of address space it never touches) cannot start under it, and N processes may each
take the limit. A cgroup counts the memory the sandbox's processes really use, all together.
"""

import os
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


def remove(sandbox_ref: str) -> None:
    found = root()
    if found is not None:
        try:
            (found[0] / sandbox_ref).rmdir()  # only once every process in it ended
        except OSError:
            pass
