"""Sandbox lifecycle figures on the real local backend: cold start, snapshot cost, pool claim."""

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from bench._common import goal, open_dir, p50, p90, report, say, spread, stopwatch
from bench._fixtures import build, local_backend, ready_sandbox, register, terminate_all
from bench._git import MB, Origin
from sandboxes import provisioning
from sandboxes.backends.local import LocalBackend
from sandboxes.backends.local_builds import dir_size
from sandboxes.models import Repo, Sandbox

COLD_RUNS = 7
NOOP_RUNS = 7
SNAPSHOT_RUNS = 7
POOL_SIZE = 15
MIN_FREE_BYTES = 5 * 1024**3


class Phases:
    """Times the backend calls provisioning makes, by wrapping them on the backend instance."""

    def __init__(self, backend: LocalBackend, names: tuple[str, ...] = ("start", "exec")):
        self.backend = backend
        self.samples: dict[str, list[float]] = {name: [] for name in names}

    def __enter__(self) -> "Phases":
        for name in self.samples:
            setattr(self.backend, name, self._timed(name, getattr(self.backend, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.samples:
            delattr(self.backend, name)  # the class's method shows through again

    def _timed(self, name: str, method: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.samples[name].append(time.perf_counter() - start)

        return timed


def cold_start(repo: Repo, origin: Origin, backend: LocalBackend) -> None:
    """Ready image → sandbox synced to a branch head one commit newer than the image."""
    origin.new_commit()
    provisioning.terminate(ready_sandbox(repo).pk)  # warm-up, not counted
    totals: list[float] = []
    with Phases(backend) as phases:
        for _ in range(COLD_RUNS):
            head = origin.new_commit()
            with stopwatch() as elapsed:
                sandbox = ready_sandbox(repo)
            totals.append(elapsed())
            if sandbox.synced_commit != head:
                raise RuntimeError(f"sandbox synced to {sandbox.synced_commit}, not the head {head}")
            provisioning.terminate(sandbox.pk)
    starts, syncs = phases.samples["start"], phases.samples["exec"]
    rest = [t - a - b for t, a, b in zip(totals, starts, syncs, strict=True)]
    report("cold_start_p50", p50(totals), "s")
    report("cold_start_p90", p90(totals), "s")
    report("cold_start_holder_p50", p50(starts) * 1000, "ms", 1)
    report("cold_start_sync_p50", p50(syncs) * 1000, "ms", 1)
    report("cold_start_other_p50", p50(rest) * 1000, "ms", 1)
    say(f"cold start {spread(totals, 1, 's')} over {COLD_RUNS} runs")
    say(f"  backend.start (holder + overlay mount): {spread(starts, 1000, 'ms')}")
    say(f"  backend.exec of the git sync:           {spread(syncs, 1000, 'ms')}")
    say(f"  the rest (database, announce):          {spread(rest, 1000, 'ms')}")

    sandbox = ready_sandbox(repo)
    noop = []
    for _ in range(NOOP_RUNS):
        with stopwatch() as elapsed:
            backend.exec(sandbox.backend_ref, "true")
        noop.append(elapsed())
    provisioning.terminate(sandbox.pk)
    report("exec_noop_p50", p50(noop) * 1000, "ms", 1)
    say(f"exec of `true` (nsenter + bwrap + bash): {spread(noop, 1000, 'ms')}")
    goal("cold start p50", p50(totals), "s", 2)


def pool_claim(repo: Repo) -> None:
    with stopwatch() as filling:
        for _ in range(POOL_SIZE):
            ready_sandbox(repo, pooled=True)
    say(f"filled a warm pool of {POOL_SIZE} in {filling():.1f} s")
    times = []
    for _ in range(POOL_SIZE):
        with stopwatch() as elapsed:
            claimed = Sandbox.claim_from_pool(repo)
        if claimed is None:
            raise RuntimeError("the warm pool ran dry before every member was claimed")
        times.append(elapsed())
    report("pool_claim_p50", p50(times) * 1000, "ms", 2)
    report("pool_claim_p90", p90(times) * 1000, "ms", 2)
    say(f"pool claim {spread(times, 1000, 'ms')} over {POOL_SIZE} claims")
    goal("pool claim p50", p50(times) * 1000, "ms", 50)


def snapshot_once(backend: LocalBackend, sandbox: Sandbox, run: int) -> tuple[int, float]:
    """The same 1 MB change (one new file), then a snapshot: (size in bytes, seconds)."""
    change = f"rm -f bench-change-*.bin && head -c {MB} /dev/urandom > bench-change-{run}.bin"
    result = backend.exec(sandbox.backend_ref, change)
    if result.exit_code != 0:
        raise RuntimeError(f"the change failed: {result.output}")
    with stopwatch() as elapsed:
        snapshot = provisioning.take_snapshot(sandbox.pk)
    if snapshot is None:
        raise RuntimeError("take_snapshot refused: the sandbox was not ready")
    backend.delete_snapshot(snapshot.backend_ref)
    snapshot.delete()
    return snapshot.size_bytes, elapsed()


def snapshot_sandbox(root: Path, label: str, files: int, total: int) -> Sandbox:
    with stopwatch() as making:
        origin = Origin(root / f"origin-{label}", files, total)
    repo = register(f"bench-snap-{label}", origin)
    with stopwatch() as building:
        image = build(repo)
    with stopwatch() as starting:
        sandbox = ready_sandbox(repo)
    upper = dir_size(local_backend().sandboxes / sandbox.backend_ref / "upper")
    report(f"sync_upper_size_{label}", upper, "B")
    say(f"{label}: origin {making():.1f} s, image {image.size_bytes / 1e6:.0f} MB built in {building():.1f} s, "
        f"sandbox ready in {starting():.2f} s with {upper / 1e6:.2f} MB in its upper layer after the sync")
    return sandbox


def snapshot_ratios(root: Path, backend: LocalBackend) -> None:
    free = shutil.disk_usage(root).free
    if free < MIN_FREE_BYTES:
        print(f"skipping the snapshot ratios: {free / 1024**3:.1f} GB free under {root}, they need 5 GB")
        return
    boxes = {"500mb": snapshot_sandbox(root, "500mb", 500, 500 * MB),
             "10mb": snapshot_sandbox(root, "10mb", 10, 10 * MB)}
    sizes: dict[str, list[int]] = {label: [] for label in boxes}
    times: dict[str, list[float]] = {label: [] for label in boxes}
    for run in range(SNAPSHOT_RUNS):
        for label, sandbox in boxes.items():  # interleaved, so drift hits both sides alike
            size, seconds = snapshot_once(backend, sandbox, run)
            sizes[label].append(size)
            times[label].append(seconds)
    for label in boxes:
        report(f"snapshot_time_{label}_p50", p50(times[label]) * 1000, "ms", 1)
        report(f"snapshot_size_{label}", p50(sizes[label]), "B")
    size_ratio = p50(sizes["500mb"]) / p50(sizes["10mb"])
    time_ratio = p50(times["500mb"]) / p50(times["10mb"])
    report("snapshot_size_ratio", size_ratio, "x", 2)
    report("snapshot_time_ratio", time_ratio, "x", 2)
    for label in boxes:
        say(f"{label}: snapshot {spread(times[label], 1000, 'ms')}, {p50(sizes[label]) / 1e6:.2f} MB")
    goal("snapshot size ratio 500 MB / 10 MB repo", size_ratio, "x", 1.2)
    goal("snapshot time ratio 500 MB / 10 MB repo", time_ratio, "x", 1.2)


def run() -> None:
    backend = local_backend()
    root = open_dir(Path(settings.VAR_DIR) / "bench-sandboxes")
    with stopwatch() as preparing:
        origin = Origin(root / "origin-20mb", 300, 20 * MB)
        repo = register("bench-cold", origin)
        build(repo)
    say(f"20 MB repo of 300 files, image built in {preparing():.1f} s")
    try:
        cold_start(repo, origin, backend)
        pool_claim(repo)
    finally:
        terminate_all()
    try:
        snapshot_ratios(root, backend)
    finally:
        terminate_all()
        shutil.rmtree(root, ignore_errors=True)
