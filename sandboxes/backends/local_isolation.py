"""How a local sandbox's commands are walled in: the uid they run as, their own network (local_network.py),
and bubblewrap's mounts, environment and limits. Shared by the image build and every sandbox command."""

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from bridge.protocol import SANDBOX_HOME, SANDBOX_WORKSPACE
from sandboxes.backends import local_network
from sandboxes.backends.base import BackendError

HOME = str(SANDBOX_HOME)
WORKSPACE = str(SANDBOX_WORKSPACE)
SANDBOX_UID = 1000
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_uid() -> int | None:
    """The host uid sandbox processes run as, when the platform runs as root."""
    return settings.SANDBOX_HOST_UID if os.geteuid() == 0 else None


def drop_privileges() -> list[str]:
    uid = host_uid()
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def in_own_network(plan: local_network.NetworkPlan, home: Path) -> list[str]:
    """A command prefix: run as the sandbox user, in a user and network namespace of its own (pasta),
    behind the walls (local_walls.py), as that namespace's root."""
    return [*drop_privileges(), "env", f"HOME={home}", *local_network.pasta_argv(plan),
            *local_network.walls_argv(plan)]


def give_to_sandbox_user(*paths: Path) -> None:
    uid = host_uid()
    if uid is not None:
        subprocess.run(["chown", "-R", f"{uid}:{uid}", *map(str, paths)], check=True)


def hidden_paths(root: Path) -> list[str]:
    """Host paths a sandbox must not read: the control plane's data and code, and
    other sandboxes (they live under the sandbox root)."""
    paths = {str(settings.VAR_DIR), str(settings.BASE_DIR), str(root), "/root"}
    paths.update(getattr(settings, "SANDBOX_EXTRA_HIDDEN_PATHS", []))
    paths.update(("/etc/shadow", "/etc/gshadow", "/etc/ssh"))
    return sorted(p for p in paths if os.path.lexists(p))

def sandbox_environment(env: dict[str, str]) -> dict[str, str]:
    """The whole environment of a sandbox command, `env` over the base one. It is given to the process that
    starts bubblewrap (Popen's env), never as arguments: any user of the host reads command lines with `ps`,
    while a process's environment is readable by its own uid alone."""
    return {"PATH": BASE_PATH, "HOME": HOME, "USER": "agent", "LANG": "C.UTF-8", "TERM": "dumb", **env}


def bwrap_args(
    root: Path, home: Path, tmp: Path, die_with_parent: bool = True, read_only: tuple = (),
    mounts: dict[str, str] | None = None, address_space_limit: bool = True, own_pids: bool = False,
) -> list[str]:
    """bubblewrap's arguments, run with sandbox_environment() as its environment, which the command inherits.
    `own_pids` for a command outside any sandbox (an image build's): a PID namespace and /proc of its
    own, or it would see (and could signal) the processes of every sandbox, which run as the same uid."""
    # Run inside the sandbox's user namespace (in_own_network), whose root is the sandbox user.
    args = [
        "bwrap",
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
        "--cap-drop", "ALL", "--new-session",
        "--ro-bind", "/", "/",
    ]
    if die_with_parent:
        args.append("--die-with-parent")
    for path in hidden_paths(root):
        args += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    args += [
        "--tmpfs", "/home",
        "--bind", str(home), HOME,
        "--bind", str(tmp), "/tmp",
    ]
    for path in read_only:  # e.g. a repo reached by a file:// URL, to sync from
        args += ["--ro-bind", path, path]
    # The host's /run (sockets of host services) and /opt stay out; the platform's tools go in /opt.
    args += ["--tmpfs", "/run", "--tmpfs", "/opt"]
    for target, source in (mounts or {}).items():
        args += ["--ro-bind", source, target]
    args += [
        *(["--unshare-pid", "--proc", "/proc"] if own_pids else ["--ro-bind", "/proc", "/proc"]),
        "--dev", "/dev",
        "--chdir", WORKSPACE,
    ]
    limits = [
        "prlimit",
        *([f"--as={settings.SANDBOX_MEMORY_LIMIT_BYTES}"] if address_space_limit else []),
        f"--nproc={settings.SANDBOX_PROCESS_LIMIT}",
        "--",
    ]
    return args + ["--", *limits]

def entered_namespaces() -> list[str]:
    """nsenter's options to join a sandbox. Root becomes the namespace's root (the sandbox user); another
    user already is it, and keeps its groups (the namespace refuses setgroups)."""
    base = ["--user", "--mount", "--pid", "--net"]
    return base if host_uid() is not None else [*base, "--preserve-credentials"]

def check_reachable(path: Path) -> None:
    """bubblewrap opens bind sources as the sandbox user: every parent must let it pass."""
    uid = host_uid()
    if uid is None:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if parent.stat().st_uid != uid and not mode & 0o001:
            raise BackendError(
                f"{parent} is not reachable by the sandbox user (uid {uid}): "
                f"set SANDBOX_ROOT to a folder whose parents are world-searchable (chmod o+x)"
            )

def reachable_copy(source: Path, spare: Path) -> str:
    """`source` if the sandbox user can reach it, else a copy of it (fine for small folders
    such as the bridge's source in a checkout under /root)."""
    try:
        check_reachable(source)
        return str(source)
    except BackendError:
        shutil.copytree(source, spare, ignore=shutil.ignore_patterns("__pycache__"))
        give_to_sandbox_user(spare)
        return str(spare)
