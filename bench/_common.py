"""Reporting and small helpers shared by the benchmark groups (no Django imports)."""

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def report(name: str, value: float, unit: str, digits: int = 3) -> None:
    """The machine-readable line tools parse: `BENCH <name> <value> <unit>`."""
    text = str(int(value)) if unit == "B" else f"{value:.{digits}f}"
    print(f"BENCH {name} {text} {unit}", flush=True)


def say(text: str) -> None:
    """A human-readable context line (never starts with BENCH)."""
    print(f"  {text}", flush=True)


def goal(label: str, value: float, unit: str, limit: float) -> None:
    verdict = "ok" if value <= limit else "MISSED"
    print(f"{label} {value:.3g} {unit} (goal ≤ {limit:g} {unit}) {verdict}", flush=True)


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def spread(samples: list[float], scale: float = 1.0, unit: str = "") -> str:
    return f"min {min(samples) * scale:.3g} / p50 {p50(samples) * scale:.3g} / max {max(samples) * scale:.3g} {unit}"


def open_dir(path: Path) -> Path:
    """A folder the sandbox user (another uid) can pass through: o+x on it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(path.stat().st_mode | 0o011)
    return path


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed:` ... `elapsed()` gives seconds, frozen at the block's end."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())
