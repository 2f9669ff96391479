"""`manage.py run_front`: the front proxy (nginx) on the web port, in front of Daphne. See docs/front-proxy.md."""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ide import front_config
from ide.paths import is_port
from inspect_site.web import daphne_sockets


def absolute(address: str) -> str:
    """nginx resolves a relative socket path against its own prefix, not the working folder."""
    if address.startswith("unix:"):
        return "unix:" + str(Path(address.removeprefix("unix:")).resolve())
    return address


def default_workspace_listen(listen: str) -> str | None:
    """The workspace origin beside `listen` ("127.0.0.1:8000" or "8000"): the same host, on $WORKSPACE_PORT or
    the next port. None beside a unix socket: nginx's port map needs a TCP port."""
    host, _, port = listen.rpartition(":")
    if listen.startswith("unix:") or not is_port(port):
        return None
    workspace_port = os.environ.get("WORKSPACE_PORT") or str(int(port) + 1)
    return f"{host}:{workspace_port}" if host else workspace_port


class Command(BaseCommand):
    help = "Render the front proxy's nginx configuration into var/front/ and run nginx in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=f"127.0.0.1:{os.environ.get('WEB_PORT', '8000')}",
                            help="where browsers and bridges connect (default 127.0.0.1:$WEB_PORT)")
        parser.add_argument("--daphne", nargs="+", default=None,
                            help='where the Daphnes listen, each "unix:var/daphne-0.sock" or "127.0.0.1:8001" '
                                 "(default: the sockets of manage.py run_web)")
        parser.add_argument("--workspace-listen", default=None,
                            help="where VS Code's frames are served, an origin of their own (default: the host of "
                                 "--listen on $WORKSPACE_PORT, else the next port; docs/front-proxy.md)")
        parser.add_argument("--no-workspace-origin", action="store_true",
                            help="serve VS Code's frames on the platform's own origin")
        parser.add_argument("--workers", default="auto")

    def handle(self, *args, listen: str, daphne: list[str] | None, workers: str, workspace_listen: str | None,
               no_workspace_origin: bool, **options):
        nginx = front_config.nginx_binary()
        if nginx is None:
            raise CommandError("nginx is not installed: run `make setup` (apt: nginx libnginx-mod-http-lua).")
        daphnes = [absolute(address) for address in daphne] if daphne else [f"unix:{p}" for p in daphne_sockets()]
        if no_workspace_origin:
            workspace_listen = None
        elif workspace_listen is None:
            workspace_listen = default_workspace_listen(listen)
        run_dir = front_config.default_run_dir()
        try:
            # nginx tells the two apart by port alone.
            if workspace_listen and front_config.workspace_port(workspace_listen) == listen.rpartition(":")[2]:
                raise ValueError(f"the workspace origin needs a port of its own, not --listen's ({listen})")
            config = front_config.write(run_dir, listen=listen, daphnes=daphnes, workers=workers,
                                        workspace_listen=workspace_listen)
        except ValueError as error:
            raise CommandError(str(error)) from None
        workspace = f", VS Code's frames on {workspace_listen}" if workspace_listen else ""
        self.stdout.write(f"front proxy on {listen}{workspace}, Daphne at {', '.join(daphnes)} ({config})")
        self.stdout.flush()
        os.execv(nginx, [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(config)])
