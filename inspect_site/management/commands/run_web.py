"""`manage.py run_web`: the Daphne processes behind the front proxy, started and stopped together."""

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inspect_site.web import RESTART_WINDOW_SECONDS, daphne_command, daphne_sockets, may_restart

STOP_SECONDS = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def in_use(path: Path) -> bool:
    """Whether something answers on the unix socket `path` (a file left by a killed run answers nothing)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def end_with_parent() -> None:
    """Run in each Daphne before it starts: SIGTERM when run_web ends, even killed, so none is left behind
    holding its socket."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = ("Run WEB_PROCESSES Daphnes, each on var/daphne-<n>.sock; one that ends is started again, unless it keeps "
            "ending (then all stop).")

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=None, help="default: the WEB_PROCESSES setting")

    def handle(self, *args, processes: int | None, **options):
        if processes is not None and processes < 1:
            raise CommandError("--processes must be at least 1")
        daphne = shutil.which("daphne", path=str(Path(sys.executable).parent)) or shutil.which("daphne")
        if daphne is None:
            raise CommandError("daphne is not installed: run `make setup`.")
        sockets = daphne_sockets(processes)
        for path in sockets:
            if in_use(path):
                raise CommandError(f"{path} is in use: is the platform running already?")
            if path.exists() and not path.is_socket():
                raise CommandError(f"{path} is in the way: it is not a socket")
            path.unlink(missing_ok=True)

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        def start(path: Path) -> subprocess.Popen:
            path.unlink(missing_ok=True)  # the socket file of the one that ended
            return subprocess.Popen(daphne_command(daphne, path), preexec_fn=end_with_parent)

        children: list[subprocess.Popen] = []
        ended_at: list[list[float]] = [[] for _ in sockets]
        failing = ""
        try:
            children = [start(path) for path in sockets]
            self.stdout.write(f"{len(children)} Daphne processes on {', '.join(map(str, sockets))}")
            self.stdout.flush()
            while not stopping and not failing:
                time.sleep(0.2)
                for index, child in enumerate(children):
                    if stopping or child.poll() is None:
                        continue
                    ended_at[index].append(time.monotonic())
                    reason = f"pid {child.pid} on {sockets[index]} exited with {child.returncode}"
                    if not may_restart(ended_at[index], time.monotonic()):
                        failing = f"{reason}, its {len(ended_at[index])}th end within {RESTART_WINDOW_SECONDS:.0f} s"
                        break
                    # The other Daphnes go on serving; the front proxy skips this socket until it answers again.
                    self.stdout.write(f"a Daphne ended ({reason}); starting it again")
                    self.stdout.flush()
                    children[index] = start(sockets[index])
        finally:
            stop_all(children)
        if failing:
            raise CommandError(f"a Daphne keeps ending ({failing}); the others were stopped")


def stop_all(children: list[subprocess.Popen]) -> None:
    """SIGTERM to those still running, SIGKILL to those not gone after STOP_SECONDS."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
