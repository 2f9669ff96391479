"""`python -m bench [group ...]`: run benchmark groups (all when none is named).

Everything lives in a fresh folder, <tmp>/inspect-bench/run-<timestamp>/ (VAR_DIR, so the SQLite
database, the embedded Redis socket and the sandbox root), removed at the end, even on failure.
A DATABASE_URL or REDIS_URL in the environment is respected.
"""

import importlib
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench._common import open_dir

BASE_DIR = Path(__file__).resolve().parent.parent


def known_groups() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def prepare_environment() -> Path:
    """Before Django reads its settings: point every file it writes at a fresh folder."""
    # Under the system temp folder: the sandbox user must reach it, wherever the checkout is.
    base = open_dir(Path(tempfile.gettempdir()) / "inspect-bench")
    run_dir = open_dir(base / time.strftime("run-%Y%m%d-%H%M%S"))
    os.environ["VAR_DIR"] = str(run_dir)
    os.environ["SANDBOX_ROOT"] = str(open_dir(run_dir / "sandboxes"))
    os.environ["SANDBOX_BACKEND"] = "local"
    os.environ["DJANGO_SETTINGS_MODULE"] = "inspect_site.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return run_dir


def start_redis() -> subprocess.Popen | None:
    """The embedded Redis, as `make run` has, unless REDIS_URL names one."""
    from django.conf import settings

    from inspect_site import embedded_redis

    if settings.REDIS_URL:
        return None
    return embedded_redis.start(settings.EMBEDDED_REDIS_SOCKET)


def clean_up(redis: subprocess.Popen | None) -> None:
    from django.db import connections

    from bench._fixtures import kill_strays, local_backend, terminate_all
    from sandboxes.models import Repo

    try:
        ended = terminate_all()
        backend = local_backend()
        for box in backend.sandboxes.iterdir():  # anything the database lost track of
            backend.terminate(box.name)
            ended += 1
        ended += kill_strays(backend.root)
        if ended:
            print(f"cleanup: terminated {ended} sandbox(es)")
        Repo.objects.filter(name__startswith="bench-").delete()  # matters with an external DATABASE_URL
    finally:
        connections.close_all()
        if redis is not None:
            redis.terminate()
            redis.wait()


def main(argv: list[str]) -> int:
    known = known_groups()
    groups = argv or known
    unknown = [g for g in groups if g not in known]
    if unknown:
        print(f"unknown benchmark group(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("note: not root, sandboxes run in a user namespace of their own", file=sys.stderr)
    # SIGTERM (e.g. a CI timeout) must still reach the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    run_dir = prepare_environment()
    redis = None
    django_ready = False
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        django_ready = True
        redis = start_redis()
        for group in groups:
            print(f"== {group}", flush=True)
            importlib.import_module(f"bench.{group}").run()
    finally:
        try:
            if django_ready:
                clean_up(redis)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            print(f"benchmarks took {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
