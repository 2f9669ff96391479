"""Running host commands with streamed output, a timeout, and a clean kill."""

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from sandboxes.backends.base import ExecResult

MAX_KEPT_OUTPUT = 1024 * 1024  # characters kept in ExecResult.output (the stream sees everything)
DRAIN_SECONDS = 0.2  # after the command exits, how long background children may keep its output open


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
    """Run `args` in its own process group; feed each output line to `on_output`.

    Returns when the command exits (not when every background child it left closes
    the output), or kills it when `timeout` seconds pass."""
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, env=env, cwd=cwd,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout if timeout else None
    kept: list[str] = []
    kept_len = 0
    pending = b""
    timed_out = False
    exited_at = None

    def emit(text: str) -> None:
        nonlocal kept_len
        if on_output:
            on_output(text)
        if kept_len < MAX_KEPT_OUTPUT:
            kept.append(text)
            kept_len += len(text)

    try:
        while True:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > DRAIN_SECONDS:
                break
            if deadline and now > deadline and exited_at is None:
                timed_out = True
                kill_group(proc)
                proc.wait()
                break
            if not selector.select(timeout=0.05):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:  # every writer closed the output
                if exited_at is None:
                    proc.wait()
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(line.decode(errors="replace") + "\n")
    finally:
        selector.close()
        proc.stdout.close()
        if proc.poll() is None:
            kill_group(proc)
            proc.wait()
    if pending:
        emit(pending.decode(errors="replace"))
    output = "".join(kept)
    if timed_out:
        message = f"\n[timed out after {timeout:g} s]\n"
        if on_output:
            on_output(message)
        return ExecResult(exit_code=124, output=output + message)
    return ExecResult(exit_code=proc.returncode, output=output)
