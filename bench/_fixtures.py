"""Repos, images and sandboxes through the product's own code paths (needs Django set up)."""

import os
import signal
from pathlib import Path

from bench._git import Origin
from sandboxes import provisioning
from sandboxes.backends import get_backend
from sandboxes.backends.local import LocalBackend
from sandboxes.builds import run_build
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox


def register(name: str, origin: Origin) -> Repo:
    return Repo.objects.create(name=name, clone_url=origin.url, default_branch="main")


def build(repo: Repo) -> RepoImage:
    """Queue and run a build as the worker would; fail loudly with its log if it fails."""
    image, _ = repo.request_build("bench")
    built = run_build(image.pk)
    if built is None or built.status != RepoImage.Status.READY:
        log = built.build_log[-2000:] if built else ""
        raise RuntimeError(f"image build for {repo.name} failed:\n{log}")
    return built


def ready_sandbox(repo: Repo, pooled: bool = False) -> Sandbox:
    sandbox = provisioning.create_sandbox(repo, pooled=pooled)
    sandbox = provisioning.provision(sandbox.pk)
    if sandbox is None or sandbox.state != State.READY:
        reason = sandbox.end_reason if sandbox else "its row vanished"
        raise RuntimeError(f"sandbox did not become ready: {reason}")
    return sandbox


def local_backend() -> LocalBackend:
    backend = get_backend()
    if not isinstance(backend, LocalBackend):
        raise RuntimeError(f"the benchmarks need the local backend, not {backend.name}")
    return backend


def terminate_all(repo: Repo | None = None) -> int:
    """End every live sandbox (of one repo, or all); returns how many."""
    live = Sandbox.objects.filter(state__in=State.LIVE)
    if repo is not None:
        live = live.filter(repo=repo)
    ids = list(live.values_list("pk", flat=True))
    for pk in ids:
        provisioning.terminate(pk, reason="benchmark finished")
    return len(ids)


def kill_strays(root: Path) -> int:
    """Kill processes still holding a sandbox under `root` (e.g. a start cut short by a signal,
    before the backend recorded its init pid): their command lines name folders under it."""
    marker = str(root).encode()
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return killed
