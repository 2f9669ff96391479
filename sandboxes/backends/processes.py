"""Running host commands with streamed output, a timeout, and a clean kill."""

import os
import signal
import subprocess
import threading
from collections.abc import Callable

from sandboxes.backends.base import ExecResult

MAX_KEPT_OUTPUT = 1024 * 1024  # characters kept in ExecResult.output (the stream sees everything)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_streaming(
    args: list[str],
    on_output: Callable[[str], None] | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> ExecResult:
    """Run `args` in its own process group; feed each output line to `on_output`."""
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        kill_group(proc)

    timer = threading.Timer(timeout, on_timeout) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    kept: list[str] = []
    kept_len = 0
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if on_output:
                on_output(line)
            if kept_len < MAX_KEPT_OUTPUT:
                kept.append(line)
                kept_len += len(line)
        code = proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:
            kill_group(proc)
            proc.wait()
    output = "".join(kept)
    if timed_out.is_set():
        message = f"\n[timed out after {timeout:g} s]\n"
        if on_output:
            on_output(message)
        return ExecResult(exit_code=124, output=output + message)
    return ExecResult(exit_code=code, output=output)
