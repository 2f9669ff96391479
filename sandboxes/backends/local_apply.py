"""Bring a running local sandbox's home to a snapshot: its upper layer applied through the overlay.

Runs in the sandbox's mount namespace (nsenter, see local.py), where the overlay is mounted, because
an overlay's upper folder must not be changed under it. A snapshot is an upper layer, so it says
what changed: a file or folder to write, a whiteout (a 0:0 character device) for a path deleted,
and an opaque folder (an xattr) for one whose earlier contents are all gone. Standalone on purpose:
it must not import Django.

usage: local_apply.py SNAPSHOT_UPPER MERGED PLAN_JSON
PLAN_JSON: {"skip": [paths left alone], "aside": {path: where it goes instead}, "done": path written last}
"""

import json
import os
import shutil
import stat
import sys

OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def copy_entry(source: str, target: str, st: os.stat_result) -> None:
    """One file, link or (empty) folder, with the snapshot's owner and mode."""
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(target) or os.path.islink(target):
            remove(target)
            os.mkdir(target)
    elif stat.S_ISLNK(st.st_mode):
        remove(target)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(st.st_mode):
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        partial = target + ".inspect-partial"
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    else:
        return  # sockets and pipes are not content
    os.lchown(target, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))


def apply(source: str, target: str, rel: str, plan: dict) -> None:
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        path = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        if path in plan["aside"]:
            put_aside(entry.path, os.path.join(plan["home"], plan["aside"][path]), st)
        elif path in plan["skip"]:
            if stat.S_ISDIR(st.st_mode) and any(a.startswith(path + "/") for a in plan["aside"]):
                apply(entry.path, os.path.join(target, entry.name), path, {**plan, "only_aside": True})
        elif plan.get("only_aside"):
            if stat.S_ISDIR(st.st_mode) and any(a.startswith(path + "/") for a in plan["aside"]):
                apply(entry.path, os.path.join(target, entry.name), path, plan)
        elif is_whiteout(st):
            remove(os.path.join(target, entry.name))
        else:
            destination = os.path.join(target, entry.name)
            copy_entry(entry.path, destination, st)
            if stat.S_ISDIR(st.st_mode):
                if is_opaque(entry.path):
                    for name in os.listdir(destination):
                        gone = not os.path.lexists(os.path.join(entry.path, name))
                        if gone and f"{path}/{name}" not in plan["skip"]:
                            remove(os.path.join(destination, name))
                apply(entry.path, destination, path, plan)


def put_aside(source: str, target: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        return
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    os.lchown(folder, st.st_uid, st.st_gid)
    copy_entry(source, target, st)


def main() -> None:
    upper, merged, plan_json = sys.argv[1:4]
    plan = json.loads(plan_json)
    plan["home"] = merged
    home = os.stat(merged)
    apply(upper, merged, "", plan)
    done = os.path.join(merged, plan["done"])
    os.makedirs(os.path.dirname(done), exist_ok=True)
    os.lchown(os.path.dirname(done), home.st_uid, home.st_gid)
    with open(done, "w") as f:
        f.write("done\n")
    os.lchown(done, home.st_uid, home.st_gid)


if __name__ == "__main__":
    main()
