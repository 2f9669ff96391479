"""Micro-benchmark of the workspace proxy's data path (no sandbox, no database): `python -m bench._proxy_micro [runs]`.

Starts `python3 -m http.server` with a 5 MB file and a Daphne serving this module's `application`:
  /mem/<n>           the 5 MB from memory in n-byte ASGI messages: what Daphne alone costs
  /proxy/<file>      ide.proxy's forward() to the upstream, skipping the auth and target lookups
and fetches each alternately with the direct upstream, printing medians (the machine is shared: only
figures from the same run compare).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024 * 1024
SIZE = 5 * MB
BASE = Path(__file__).resolve().parent.parent


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspect_site.settings")
    os.environ.setdefault("VAR_DIR", tempfile.gettempdir() + "/proxy-micro-var")
    import django

    django.setup()


async def application(scope, receive, send):
    """Daphne's app (imported in the server process)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/mem/"):
        step = int(path.removeprefix("/mem/"))
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(SIZE).encode())]})
        for start in range(0, SIZE, step):
            await send({"type": "http.response.body", "body": _PAYLOAD[start:start + step], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path.startswith("/proxy/"):
        from ide.paths import ServicePath
        from ide.proxy import HttpProxy
        from ide.targets import Target

        rest = path.removeprefix("/proxy")
        await HttpProxy().forward(scope, receive, send, ServicePath(1, "preview-1", rest),
                                  Target(200, base_url=os.environ["MICRO_UPSTREAM"]))
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


if os.environ.get("MICRO_UPSTREAM"):  # the Daphne process
    _setup_django()
    _PAYLOAD = os.urandom(SIZE)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu(pid: int) -> float:
    """CPU seconds a process has used (user + system)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _wait(url: str, client) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    import httpx

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    modes = sys.argv[2:] or ["/proxy/big.bin", "/proxy/small.txt", "/mem/65536", "/mem/1048576"]
    with tempfile.TemporaryDirectory() as root:
        Path(root, "big.bin").write_bytes(os.urandom(SIZE))
        Path(root, "small.txt").write_bytes(b"hello\n")
        up_port, daphne_port = _free_port(), _free_port()
        upstream = subprocess.Popen([sys.executable, "-m", "http.server", str(up_port), "--bind", "127.0.0.1",
                                     "--directory", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {**os.environ, "MICRO_UPSTREAM": f"http://127.0.0.1:{up_port}"}
        daphne = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(daphne_port),
                                   "bench._proxy_micro:application"], cwd=BASE, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids = {"daphne": daphne.pid, "upstream": upstream.pid, "client": os.getpid()}
        try:
            direct_base, daphne_base = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{daphne_port}"
            with httpx.Client(timeout=30) as client:
                _wait(direct_base + "/small.txt", client)
                _wait(daphne_base + "/mem/1048576", client)
                for mode in modes:
                    name = mode.rsplit("/", 1)[1] if mode.startswith("/proxy/") else "big.bin"
                    pairs = [(daphne_base + mode, []), (direct_base + "/" + name, [])]
                    for url, _ in pairs:  # warm both
                        client.get(url).raise_for_status()
                    cpu = {name: _cpu(pid) for name, pid in pids.items()}
                    for _ in range(runs):
                        for url, samples in pairs:
                            started = time.perf_counter()
                            response = client.get(url)
                            samples.append(time.perf_counter() - started)
                            response.raise_for_status()
                    via, direct = pairs[0][1], pairs[1][1]
                    cpu = {name: (_cpu(pid) - cpu[name]) / runs * 1000 for name, pid in pids.items()}
                    print(f"{mode:22} {statistics.median(via) * 1000:7.2f} ms  direct {name:9} "
                          f"{statistics.median(direct) * 1000:7.2f} ms  ratio "
                          f"{statistics.median(via) / statistics.median(direct):5.2f}  cpu/run ms: "
                          + " ".join(f"{name} {value:.1f}" for name, value in cpu.items()), flush=True)
        finally:
            for process in (daphne, upstream):
                process.terminate()
                process.wait()


if __name__ == "__main__":
    main()
