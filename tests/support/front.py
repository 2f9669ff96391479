"""The front proxy (nginx, ide/front_config.py) in front of a test's Daphne, as `manage.py run_front` runs it."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ide import front_config
from tests.support.live_server import LiveServer, free_port


class FrontServer:
    """nginx on a free port in front of `daphne`; `url` and `port` are the front's, as a browser sees them."""

    def __init__(self, daphne: LiveServer):
        self.daphne = daphne
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = Path(tempfile.mkdtemp(prefix="front-"))
        self.log_path = self.run_dir / "error.log"
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        front = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return front + self.daphne.log()

    def start(self) -> "FrontServer":
        config = front_config.write(self.run_dir, listen=f"127.0.0.1:{self.port}",
                                    daphne=f"127.0.0.1:{self.daphne.port}", workers=1, error_log=str(self.log_path))
        self.process = subprocess.Popen([front_config.nginx_binary(), "-e", str(self.log_path), "-p",
                                         str(self.run_dir), "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nginx exited: " + self.log())
            try:
                httpx.get(self.url + "/accounts/login/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start in 15 s: " + self.log())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)
