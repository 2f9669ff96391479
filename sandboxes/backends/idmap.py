"""Idmapped bind mounts (Linux 5.12+, root only): a folder shown with one uid's files as another uid's.

A repo's image is one folder owned by the image uid (SANDBOX_HOST_UID), shared by all of the repo's sandboxes as
their overlay's lower layer. Each sandbox runs as a uid of its own; it sees the image through such a mount, its
files as its own, so overlayfs can copy them up when it writes them. Made with open_tree, mount_setattr and
move_mount, which util-linux's mount (2.38 on Debian 12) cannot do yet."""

import ctypes
import os
import struct
import subprocess
import time
from pathlib import Path

# The new mount API's numbers, the same on x86_64 and aarch64 (and every architecture but alpha).
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH, AT_FDCWD = 0x1, 0x8000, 0x1000, -100
MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP, MNT_DETACH = 0x4, 0x00100000, 0x2
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
libc = ctypes.CDLL(None, use_errno=True)


class IdmapError(OSError):
    pass


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise IdmapError(errno, f"{what}: {os.strerror(errno)}")
    return result


def bind(source: Path, target: Path, from_uid: int, to_uid: int) -> None:
    """Mount `source` read-only at `target` (an empty folder), its files of `from_uid` (user and group) shown as
    `to_uid`'s."""
    # The mapping is a user namespace's: one made for it by a process that only holds it while the maps are read.
    holder = subprocess.Popen(["unshare", "--user", "sleep", "60"], stdin=subprocess.DEVNULL)
    tree = -1
    try:
        proc = Path(f"/proc/{holder.pid}")
        for _ in range(200):  # until unshare has made the namespace (its link differs from ours)
            if os.readlink(proc / "ns" / "user") != os.readlink("/proc/self/ns/user"):
                break
            time.sleep(0.005)
        (proc / "uid_map").write_text(f"{from_uid} {to_uid} 1\n")
        (proc / "setgroups").write_text("deny")
        (proc / "gid_map").write_text(f"{from_uid} {to_uid} 1\n")
        userns = os.open(proc / "ns" / "user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, bytes(source),
                                       OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC), "open_tree")
            # Read-only: an overlay never writes its lower layer, and the image is every sandbox's of the repo.
            flags = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
            attr = ctypes.create_string_buffer(struct.pack("QQQQ", flags, 0, 0, userns))
            _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, attr, 32), "mount_setattr")
            _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, bytes(target), MOVE_MOUNT_F_EMPTY_PATH),
                   "move_mount")
        finally:
            os.close(userns)
    finally:
        if tree >= 0:
            os.close(tree)
        holder.kill()
        holder.wait()


def detach(target: Path) -> None:
    """Unmount `target` from this mount namespace (lazily: namespaces that copied it keep theirs)."""
    if libc.umount2(bytes(target), MNT_DETACH) < 0 and ctypes.get_errno() not in (22, 2):  # not a mount, gone
        errno = ctypes.get_errno()
        raise IdmapError(errno, f"umount {target}: {os.strerror(errno)}")


def is_mounted(path: Path) -> bool:
    """Whether something is mounted at `path` in this mount namespace (os.path.ismount misses a bind mount from
    the same filesystem, which this is)."""
    wanted = str(path).replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == wanted for line in mounts)
