"""`manage.py run_front`: the front proxy (nginx) on the web port, in front of Daphne. See docs/front-proxy.md."""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ide import front_config
from inspect_site.web import daphne_sockets


def absolute(address: str) -> str:
    """nginx resolves a relative socket path against its own prefix, not the working folder."""
    if address.startswith("unix:"):
        return "unix:" + str(Path(address.removeprefix("unix:")).resolve())
    return address


class Command(BaseCommand):
    help = "Render the front proxy's nginx configuration into var/front/ and run nginx in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=f"127.0.0.1:{os.environ.get('WEB_PORT', '8000')}",
                            help="where browsers and bridges connect, for the platform's pages and the sessions' "
                                 "workspace hosts alike (default 127.0.0.1:$WEB_PORT)")
        parser.add_argument("--daphne", nargs="+", default=None,
                            help='where the Daphnes listen, each "unix:var/daphne-0.sock" or "127.0.0.1:8001" '
                                 "(default: the sockets of manage.py run_web)")
        parser.add_argument("--workers", default="auto")

    def handle(self, *args, listen: str, daphne: list[str] | None, workers: str, **options):
        nginx = front_config.nginx_binary()
        if nginx is None:
            raise CommandError("nginx is not installed: run `make setup` (apt: nginx libnginx-mod-http-lua).")
        daphnes = [absolute(address) for address in daphne] if daphne else [f"unix:{p}" for p in daphne_sockets()]
        run_dir = front_config.default_run_dir()
        try:
            config = front_config.write(run_dir, listen=listen, daphnes=daphnes, workers=workers)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"front proxy on {listen}, Daphne at {', '.join(daphnes)} ({config})")
        self.stdout.flush()
        os.execv(nginx, [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(config)])
