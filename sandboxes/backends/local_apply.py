"""Bring a running local sandbox's home to a snapshot: its upper layer applied through the overlay.

Runs as a command of the sandbox itself (under bubblewrap, as the sandbox user, with the snapshot
mounted read-only), never as the platform: whatever the sandbox's own processes did to its files
(a symlink planted where the snapshot has a folder), the copy can reach nothing they could not.
A snapshot is an upper layer, so it says what changed: a file or folder to write, a whiteout (a 0:0
character device) for a path deleted, and an opaque folder for one whose earlier contents are all
gone (its xattr is readable only by the platform, so the platform lists those). Standalone on
purpose: it is handed to `python3 -c` and must not import anything of the project.

A sandbox synced to another commit than the snapshot's (the branch moved on since) first has its
workspace reset to the snapshot's commit, fetched from the origin if the sandbox lacks it, so the
snapshot's changes land on the very files they were made on. Once the snapshot is in (any of the
`applied` files exists), a second run does nothing: the agent may be working on those files already.

argv[1]: a JSON plan {"source": snapshot folder, "home": the sandbox's home, "skip": [paths left
alone], "aside": {path: where it goes instead}, "opaque": [paths], "done": path written last,
"applied": [paths], "reset_to": a commit id, or ""}; paths relative to the home.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

WORKSPACE = "workspace"  # the repo's folder in the home, as everywhere (sync_script)
GIT_TIMEOUT = 60  # seconds; the bridge waits 120 s for the files


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def copy_entry(source: str, target: str, st: os.stat_result) -> None:
    """One file, link or (empty) folder, with the snapshot's mode."""
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(target) or os.path.islink(target):
            remove(target)
            os.mkdir(target)
        os.chmod(target, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
    elif stat.S_ISLNK(st.st_mode):
        remove(target)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(st.st_mode):
        remove(target)
        shutil.copyfile(source, target, follow_symlinks=False)
        os.chmod(target, stat.S_IMODE(st.st_mode))
    # sockets and pipes are not content


def under(path: str, paths) -> bool:
    return any(p.startswith(path + "/") for p in paths)


def apply(source: str, target: str, rel: str, plan: dict, only_aside: bool = False) -> None:
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except PermissionError:  # a folder that is not the sandbox's own: left out
        sys.stderr.write(f"left out {rel}/: not readable\n")
        return
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        destination = os.path.join(target, entry.name)
        if path in plan["aside"]:
            if stat.S_ISREG(st.st_mode):
                aside = os.path.join(plan["home"], plan["aside"][path])
                os.makedirs(os.path.dirname(aside), exist_ok=True)
                copy_entry(entry.path, aside, st)
        elif only_aside or path in plan["skip"]:
            if stat.S_ISDIR(st.st_mode) and under(path, plan["aside"]):
                apply(entry.path, destination, path, plan, only_aside=True)
        elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout: deleted in the snapshot
            remove(destination)
        else:
            try:
                copy_entry(entry.path, destination, st)
            except PermissionError:  # not the sandbox's own (a copy may hold others' files): left out
                sys.stderr.write(f"left out {path}: not readable\n")
                continue
            if stat.S_ISDIR(st.st_mode):
                if path in plan["opaque"]:
                    for name in os.listdir(destination):
                        if not os.path.lexists(os.path.join(entry.path, name)) and f"{path}/{name}" not in plan["skip"]:
                            remove(os.path.join(destination, name))
                apply(entry.path, destination, path, plan)


def git(home: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", os.path.join(home, WORKSPACE), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 1, "", f"git {args[0]} took over {GIT_TIMEOUT} s")


def reset_workspace(home: str, commit: str) -> None:
    """Reset the workspace to `commit` (tracked files and the index; untracked ones stay)."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        sys.exit(f"not a commit id: {commit!r}")
    if git(home, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        fetched = git(home, "fetch", "--quiet", "--no-tags", "origin", "--end-of-options", commit)
        if fetched.returncode != 0:
            sys.exit(f"the snapshot's commit {commit} is not in the sandbox or its origin: {fetched.stderr.strip()}")
    for attempt in range(5):  # VS Code's git extension may hold the index's lock for a moment
        reset = git(home, "reset", "--quiet", "--hard", commit, "--")
        if reset.returncode == 0:
            return
        if "index.lock" not in reset.stderr:
            break
        time.sleep(0.2 * (attempt + 1))
    sys.exit(f"resetting the workspace to {commit} failed: {reset.stderr.strip()}")


def main() -> None:
    plan = json.loads(sys.argv[1])
    plan["opaque"] = set(plan["opaque"])
    if any(os.path.lexists(os.path.join(plan["home"], path)) for path in plan["applied"]):
        return  # applied already (a task run twice)
    if plan["reset_to"]:
        reset_workspace(plan["home"], plan["reset_to"])
    apply(plan["source"], plan["home"], "", plan)
    done = os.path.join(plan["home"], plan["done"])
    os.makedirs(os.path.dirname(done), exist_ok=True)
    with open(done, "w") as f:
        f.write("done\n")


if __name__ == "__main__":
    main()
