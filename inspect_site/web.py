"""The web processes: several Daphnes, each on its own unix socket, behind the front proxy (nginx).

`manage.py run_web` starts and supervises them; `manage.py run_front` points nginx at the same sockets.
Both take the sockets from here, so the Procfile names neither.
"""

from pathlib import Path

from django.conf import settings

# Sockets through Daphne live for days (VS Code, the desktop, the session page) and may carry
# messages of several MB (a screenshot, a large file in VS Code).
DAPHNE_OPTIONS = ["--proxy-headers", "--websocket_timeout", "-1",
                  "--websocket-max-message-size", str(64 * 1024 * 1024),
                  "--websocket-max-frame-size", str(64 * 1024 * 1024)]
APPLICATION = "inspect_site.asgi:application"


def daphne_sockets(processes: int | None = None) -> list[Path]:
    """Where each Daphne listens: var/daphne-0.sock, var/daphne-1.sock, ... (absolute)."""
    count = settings.WEB_PROCESSES if processes is None else processes
    return [(Path(settings.VAR_DIR) / f"daphne-{index}.sock").resolve() for index in range(count)]


def daphne_command(daphne: str, socket: Path) -> list[str]:
    """One Daphne on a unix socket, trusting the front's forwarding headers (only nginx reaches the socket)."""
    return [daphne, "-u", str(socket), *DAPHNE_OPTIONS, APPLICATION]


# A Daphne that ends is started again on its socket; one that ends this many times within the window is
# failing for a reason a restart does not fix, and run_web stops (so `make run` stops and says why).
RESTARTS_ALLOWED = 5
RESTART_WINDOW_SECONDS = 60.0


def may_restart(ended_at: list[float], now: float) -> bool:
    """Whether a Daphne whose earlier ends were at `ended_at` (time.monotonic()) may be started again now."""
    recent = [moment for moment in ended_at if now - moment <= RESTART_WINDOW_SECONDS]
    return len(recent) <= RESTARTS_ALLOWED
