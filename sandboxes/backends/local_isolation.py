"""How a local sandbox's commands are walled in: the uid they run as, their own network (local_network.py),
and bubblewrap's mounts, environment and limits. Shared by the image build and every sandbox command."""

import os
import re
import secrets
import shlex
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
    """The host uid image builds run as (and own images), when the platform runs as root; each sandbox runs as
    a uid of its own above it (LocalBackend's uid slots). None when the platform is not root: then everything
    runs as the platform's own user."""
    return settings.SANDBOX_HOST_UID if os.geteuid() == 0 else None


def drop_privileges(uid: int | None) -> list[str]:
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def in_own_network(plan: local_network.NetworkPlan, home: Path, uid: int | None) -> list[str]:
    """A command prefix: run as `uid`, in a user and network namespace of its own (pasta), behind the walls
    (local_walls.py), as that namespace's root."""
    return [*drop_privileges(uid), "env", f"HOME={home}", *local_network.pasta_argv(plan),
            *local_network.walls_argv(plan)]


def give_to(uid: int | None, *paths: Path, only_from: int | None = None) -> None:
    """Make `paths` (whole trees) `uid`'s; nothing when the platform is not root. `only_from`: only what that uid
    owns (a copy of a sandbox's files may hold others' that it raced in: they stay theirs, so unreadable)."""
    if uid is not None:
        only = ["--from", f"{only_from}:{only_from}"] if only_from is not None else []
        subprocess.run(["chown", "-R", *only, f"{uid}:{uid}", *map(str, paths)], check=True)


def give_to_sandbox_user(*paths: Path) -> None:
    """Make `paths` the image uid's (a build's)."""
    give_to(host_uid(), *paths)


# What of the host a sandbox sees, read-only: its programs, their libraries and their configuration (an allowlist).
# Nothing else of the host exists inside: not its /home, /root, /srv, /mnt, /var (logs, databases), nor the
# platform's checkout. SANDBOX_EXTRA_HOST_PATHS adds to it (e.g. /nix).
HOST_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/var/cache/fontconfig")


def host_paths() -> list[str]:
    """The allowed host paths that exist on this machine."""
    return [p for p in (*HOST_PATHS, *settings.SANDBOX_EXTRA_HOST_PATHS) if os.path.lexists(p)]


def host_mounts() -> list[str]:
    """bubblewrap's arguments that bring the allowed host paths in: a symlink as the same symlink (/bin -> usr/bin
    on a merged-/usr system), anything else bound read-only."""
    args: list[str] = []
    for path in host_paths():
        args += ["--symlink", os.readlink(path), path] if os.path.islink(path) else ["--ro-bind", path, path]
    return args + ["--symlink", "/tmp", "/var/tmp"]


def hidden_paths(root: Path) -> list[str]:
    """Paths inside the allowed ones that a sandbox must not read all the same: the control plane's data and code,
    other sandboxes (they live under the sandbox root), the host's password hashes and SSH keys."""
    paths = {str(settings.VAR_DIR), str(settings.BASE_DIR), str(root), "/root"}
    paths.update(getattr(settings, "SANDBOX_EXTRA_HIDDEN_PATHS", []))
    # /etc is bound whole (programs read their configuration there); what in it holds host secrets is hidden.
    paths.update(("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/ssl/private", "/etc/letsencrypt",
                  "/etc/systemd", "/etc/default", "/etc/sudoers", "/etc/sudoers.d"))
    allowed = [Path(p).resolve() for p in host_paths()]
    # Hidden where they really are: a symlink into an allowed folder must not leave its target readable.
    real = {str(Path(p).resolve()) for p in paths if os.path.lexists(p)}
    return sorted(p for p in real if any(Path(p).is_relative_to(a) for a in allowed))

# The host's side of a sandbox command (setpriv, pasta, nsenter, bubblewrap) runs with this environment and no
# other: a repo's devcontainer.json sets the sandbox's environment, and an LD_PRELOAD or PATH of its choosing
# must never reach a program that runs on the host.
HOST_ENVIRONMENT = {"PATH": BASE_PATH, "LANG": "C.UTF-8"}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Inside the sandbox: export what the file says, delete the file, run the command. Secrets (the bridge's
# token, build secrets) so never appear on a command line, which every user of the host reads with `ps`.
ENV_LAUNCHER = 'set -a; . "$0"; set +a; rm -f -- "$0"; exec "$@"'


def sandbox_environment(env: dict[str, str]) -> dict[str, str]:
    """The whole environment of a sandbox command: `env` over the base one."""
    return {"PATH": BASE_PATH, "HOME": HOME, "USER": "agent", "LANG": "C.UTF-8", "TERM": "dumb", **env}


def write_environment(tmp: Path, env: dict[str, str], uid: int | None) -> str:
    """A file in the sandbox's /tmp (`tmp` on the host) holding sandbox_environment(env) as shell assignments,
    readable by the sandbox user alone; ENV_LAUNCHER reads and deletes it before the command starts. Names that
    are not shell variable names are left out. Returns its path inside the sandbox."""
    name = f".inspect-env-{secrets.token_hex(12)}"
    lines = [f"{key}={shlex.quote(value)}\n" for key, value in sandbox_environment(env).items() if ENV_NAME.match(key)]
    fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write("".join(lines))
    if uid is not None:
        os.chown(tmp / name, uid, uid)
    return f"/tmp/{name}"


def bwrap_args(
    root: Path, home: Path, tmp: Path, env: dict[str, str], die_with_parent: bool = True, read_only: tuple = (),
    mounts: dict[str, str] | None = None, address_space_limit: bool = True, own_pids: bool = False,
    uid: int | None = None,
) -> list[str]:
    """bubblewrap's arguments up to the command, which then runs with `env` (through write_environment); the
    whole prefix runs on the host with HOST_ENVIRONMENT.
    `own_pids` for a command outside any sandbox (an image build's): a PID namespace and /proc of its
    own, or it would see (and could signal) the processes of every sandbox, which run as the same uid."""
    # Run inside the sandbox's user namespace (in_own_network), whose root is the sandbox user.
    args = [
        "bwrap",
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
        "--cap-drop", "ALL", "--new-session",
        *host_mounts(),
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
        "--clearenv",
    ]
    limits = [
        "/usr/bin/prlimit",
        *([f"--as={settings.SANDBOX_MEMORY_LIMIT_BYTES}"] if address_space_limit else []),
        f"--nproc={settings.SANDBOX_PROCESS_LIMIT}",
        "--",
    ]
    return args + ["--", *limits, "/bin/sh", "-c", ENV_LAUNCHER, write_environment(tmp, env, uid)]

def entered_namespaces() -> list[str]:
    """nsenter's options to join a sandbox. Root becomes the namespace's root (the sandbox user); another
    user already is it, and keeps its groups (the namespace refuses setgroups)."""
    base = ["--user", "--mount", "--pid", "--net"]
    return base if host_uid() is not None else [*base, "--preserve-credentials"]

def check_reachable(path: Path, uid: int | None) -> None:
    """bubblewrap opens bind sources as the sandbox user (`uid`): every parent must let it pass."""
    if uid is None:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if parent.stat().st_uid != uid and not mode & 0o001:
            raise BackendError(
                f"{parent} is not reachable by the sandbox user (uid {uid}): "
                f"set SANDBOX_ROOT to a folder whose parents are world-searchable (chmod o+x)"
            )

def reachable_copy(source: Path, spare: Path, uid: int | None) -> str:
    """`source` if the sandbox user (`uid`) can reach it, else a copy of it (fine for small folders
    such as the bridge's source in a checkout under /root)."""
    try:
        check_reachable(source, uid)
        return str(source)
    except BackendError:
        shutil.copytree(source, spare, ignore=shutil.ignore_patterns("__pycache__"))
        give_to(uid, spare)
        return str(spare)
