"""`manage.py run_front`: the front proxy (nginx) on the web port, in front of Daphne. See docs/front-proxy.md."""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ide import front_config


class Command(BaseCommand):
    help = "Render the front proxy's nginx configuration into var/front/ and run nginx in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=f"127.0.0.1:{os.environ.get('WEB_PORT', '8000')}",
                            help="where browsers and bridges connect (default 127.0.0.1:$WEB_PORT)")
        parser.add_argument("--daphne", required=True,
                            help='where Daphne listens: "unix:var/daphne.sock" or "127.0.0.1:8001"')
        parser.add_argument("--workers", default="auto")

    def handle(self, *args, listen: str, daphne: str, workers: str, **options):
        nginx = front_config.nginx_binary()
        if nginx is None:
            raise CommandError("nginx is not installed: run `make setup` (apt: nginx libnginx-mod-http-lua).")
        if daphne.startswith("unix:"):  # nginx resolves relative socket paths against its own prefix
            daphne = "unix:" + str(Path(daphne.removeprefix("unix:")).resolve())
        run_dir = front_config.default_run_dir()
        config = front_config.write(run_dir, listen=listen, daphne=daphne, workers=workers)
        self.stdout.write(f"front proxy on {listen}, Daphne at {daphne} ({config})")
        self.stdout.flush()
        os.execv(nginx, [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(config)])
