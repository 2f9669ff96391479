"""The front proxy (nginx, ide/front_config.py) in front of a test's Daphne, as `manage.py run_front` runs it."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from ide import front_config
from tests.support.live_server import LiveServer, free_port, stop_group, wait_until_answering


class FrontServer:
    """nginx on a free port in front of `daphnes` (several, as `manage.py run_web` runs them, or one);
    `url` and `port` are the front's, as a browser sees them; `workspace_url` its workspace origin (VS Code's
    frames), as `manage.py run_front` serves one by default."""

    def __init__(self, *daphnes: LiveServer, workspace_origin: bool = True):
        self.daphnes = daphnes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workspace_port = free_port() if workspace_origin else None
        self.workspace_url = f"http://127.0.0.1:{self.workspace_port}" if workspace_origin else None
        self.run_dir = Path(tempfile.mkdtemp(prefix="front-"))
        self.log_path = self.run_dir / "error.log"
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        front = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return front + "".join(daphne.log() for daphne in self.daphnes)

    def start(self) -> "FrontServer":
        workspace_listen = f"127.0.0.1:{self.workspace_port}" if self.workspace_port else None
        config = front_config.write(self.run_dir, listen=f"127.0.0.1:{self.port}",
                                    daphnes=[f"127.0.0.1:{daphne.port}" for daphne in self.daphnes], workers=1,
                                    error_log=str(self.log_path),
                                    workspace_listen=workspace_listen)
        self.process = subprocess.Popen([front_config.nginx_binary(), "-e", str(self.log_path), "-p",
                                         str(self.run_dir), "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until_answering(self.url + "/accounts/login/", self.process, "nginx", 15, self.log)
        return self

    def stop(self) -> None:
        stop_group(self.process)
        shutil.rmtree(self.run_dir, ignore_errors=True)
