"""Building a repo's image for the local backend: the repo cloned at its branch, its setup commands (or its
devcontainer.json's) run as the sandbox user under the same walls as a sandbox (its own network, a memory cgroup
for all of a build's processes), then the folder moved into place whole. The log is streamed, secrets masked."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from django.conf import settings

from sandboxes import devcontainer
from sandboxes.backends import cgroups, local_network
from sandboxes.backends.base import BackendError, BuiltImage, ImageSpec, LogFn
from sandboxes.backends.local_isolation import (
    HOST_ENVIRONMENT,
    bwrap_args,
    check_reachable,
    give_to_sandbox_user,
    host_uid,
    in_own_network,
)
from sandboxes.backends.processes import run_streaming
from sandboxes.redaction import Redactor


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total



def redactor(secrets: dict[str, str], log: LogFn) -> LogFn:
    redact = Redactor(secrets)

    def write(line: str) -> None:
        log(redact(line))

    return write


def build_image(root: Path, images: Path, group_name: str, spec: ImageSpec, log: LogFn) -> BuiltImage:
    """Build `spec` into `images`/<name> of the sandbox root `root`; `group_name`: the build's memory cgroup."""
    log = redactor(spec.build_secrets, log)
    final = images / spec.name
    if final.exists():
        raise BackendError(f"image {spec.name} already exists")
    staging = images / f".building-{spec.name}"
    shutil.rmtree(staging, ignore_errors=True)
    home, tmp = staging / "home", staging / "tmp"
    workspace = home / "workspace"
    home.mkdir(parents=True)
    tmp.mkdir()
    try:
        check_reachable(staging, host_uid())
        log(f"$ git clone --branch {spec.branch} {spec.clone_url}\n")
        git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        cloned = run_streaming(
            ["git", "clone", "--quiet", "--branch", spec.branch, "--single-branch", "--",
             spec.clone_url, str(workspace)],
            on_output=log, timeout=settings.IMAGE_BUILD_TIMEOUT_SECONDS, env=git_env,
        )
        if cloned.exit_code != 0:
            raise BackendError(f"git clone failed (exit {cloned.exit_code}): {cloned.output.strip()[-500:]}")
        commit = subprocess.run(
            ["git", "-C", str(workspace), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        log(f"checked out {spec.branch} at {commit}\n")
        # A file:// origin belongs to another uid than the sandbox user; git must still read it.
        (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
        give_to_sandbox_user(home, tmp)

        env = dict(spec.env)
        setup = [(command, spec.build_secrets) for command in spec.setup_commands]
        start = list(spec.start_commands)
        ports = list(spec.forward_ports)
        if spec.use_devcontainer:
            plan = devcontainer.load(workspace)
            if plan is None:
                raise BackendError("the repo is set to use devcontainer.json, but it has none")
            log("using .devcontainer/devcontainer.json\n")
            env = {**plan.env, **env}
            # The repo's own commands: only the secrets meant for them.
            setup = [(command, spec.repo_command_secrets) for command in plan.on_create + plan.post_create] \
                + setup
            start = start + plan.post_start
            ports = ports + [port for port in plan.forward_ports if port not in ports]

        deadline = time.monotonic() + settings.IMAGE_BUILD_TIMEOUT_SECONDS
        plan = local_network.NetworkPlan(allowed=local_network.host_resolvers(),
                                         host_networks=local_network.host_networks())
        # Like a sandbox: one memory limit for all of a build's processes, counted together (root only).
        group = cgroups.limited_group(group_name, settings.SANDBOX_MEMORY_LIMIT_BYTES)
        network = [*(cgroups.join(group) if group else []), *in_own_network(plan, tmp, host_uid())]
        for command, secrets in setup:
            log(f"$ {command}\n")
            bwrap = bwrap_args(root, home, tmp, {**env, **secrets}, own_pids=True,
                               address_space_limit=group is None, uid=host_uid())
            result = run_streaming(
                [*network, *bwrap, "bash", "-c", command], on_output=log,
                timeout=max(1.0, deadline - time.monotonic()),
                env=HOST_ENVIRONMENT,
            )
            if result.exit_code != 0:
                raise BackendError(f"setup command failed with exit code {result.exit_code}: {command}")
        # The index holds root's uid and pre-chown ctimes: refreshed as the sandbox user, files
        # look unchanged in a sandbox, so the sync's reset does not copy the tree to its upper layer.
        refresh = bwrap_args(root, home, tmp, env, own_pids=True, address_space_limit=group is None,
                             uid=host_uid())
        run_streaming([*network, *refresh, "git", "update-index", "-q", "--refresh"],
                      timeout=max(1.0, deadline - time.monotonic()), env=HOST_ENVIRONMENT)
        shutil.rmtree(tmp)
        size = dir_size(home)
        log(f"image ready: {size / 1e6:.1f} MB\n")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        cgroups.remove(group_name)  # empty by now: each step's PID namespace ended with it
    return BuiltImage(
        ref=spec.name, commit_sha=commit, size_bytes=size, env=env, start_commands=start,
        forward_ports=ports,
    )

