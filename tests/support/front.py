"""The front proxy (nginx, ide/front_config.py) in front of a test's Daphne, as `manage.py run_front` runs it."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from ide import front_config
from tests.support.live_server import LiveServer, free_port, stop_group, wait_until_answering


class FrontServer:
    """nginx on a free port in front of `daphnes` (several, as `manage.py run_web` runs them, or one);
    `url` and `port` are the front's, as a browser sees them (the sessions' workspace hosts are on that port too)."""

    def __init__(self, *daphnes: LiveServer):
        self.daphnes = daphnes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.browser_url = f"http://{settings.WORKSPACE_HOST}:{self.port}"  # as LiveServer.browser_url
        self.run_dir = Path(tempfile.mkdtemp(prefix="front-"))
        self.log_path = self.run_dir / "error.log"
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        front = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return front + "".join(daphne.log() for daphne in self.daphnes)

    def start(self) -> "FrontServer":
        config = front_config.write(self.run_dir, listen=f"127.0.0.1:{self.port}",
                                    daphnes=[f"127.0.0.1:{daphne.port}" for daphne in self.daphnes], workers=1,
                                    error_log=str(self.log_path))
        self.process = subprocess.Popen([front_config.nginx_binary(), "-e", str(self.log_path), "-p",
                                         str(self.run_dir), "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until_answering(self.url + "/accounts/login/", self.process, "nginx", 15, self.log)
        return self

    def stop(self) -> None:
        stop_group(self.process)
        shutil.rmtree(self.run_dir, ignore_errors=True)
