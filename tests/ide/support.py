"""Real services for the workspace proxy to reach (an HTTP server, a WebSocket echo server, code-server) and helpers."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from bridge.workspace import code_server_argv, code_server_env, secret_cookie
from ide import workspace_hosts
from sandboxes.models import Sandbox
from sandboxes.tools import tools_dir
from tests.support.live_server import free_port, stop_group, wait_until_answering
from tests.support.rows import forward_port

BIG = os.urandom(5 * 1024 * 1024)


class HttpUpstream:
    """Answers like a sandbox's service would, and remembers what reached it."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[dict] = []
        self.release = threading.Event()  # lets /slow send its second half
        self.hung_up = threading.Event()  # set when the proxy closes a /hang request's connection
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "HttpUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def reply(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.do_GET()

            def do_GET(self):
                body = self.read_body()
                upstream.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                route = self.path.split("?")[0]
                if route == "/big":
                    self.reply(200, BIG, [("Content-Type", "application/octet-stream")])
                elif route == "/redirect":
                    self.reply(302, b"", [("Location", "/login?next=/home")])
                elif route == "/redirect-absolute":
                    self.reply(302, b"", [("Location", f"{upstream.url}/abs?x=1")])
                elif route == "/redirect-away":
                    self.reply(302, b"", [("Location", "https://github.com/login")])
                elif route == "/cookie":
                    self.reply(200, b"ok", [
                        ("Set-Cookie", "theme=dark; Path=/; Domain=127.0.0.1; HttpOnly"),
                        ("Set-Cookie", "sessionid=planted; Path=/"),
                        ("Set-Cookie", "deep=1; Path=/settings"),
                    ])
                elif route == "/respond":
                    # The status and headers given in the query: ?status=302&h=[["Location", "/x"], ...]
                    query = parse_qs(urlsplit(self.path).query)
                    given = [(name, value) for name, value in json.loads(query["h"][0])]
                    self.reply(int(query.get("status", ["200"])[0]), b"as asked", given)
                elif route == "/slow":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"5\r\nfirst\r\n")
                    self.wfile.flush()
                    upstream.release.wait(10)
                    self.wfile.write(b"6\r\nsecond\r\n0\r\n\r\n")
                elif route == "/hang":
                    # A long poll: the first bytes, then nothing until the proxy gives up on it.
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"5\r\nfirst\r\n")
                    self.wfile.flush()
                    self.connection.settimeout(10)
                    if self.connection.recv(1) == b"":
                        upstream.hung_up.set()
                    self.close_connection = True
                else:
                    echo = {
                        "server": upstream.name, "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
                    }
                    self.reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])

        return Handler


class SocketUpstream:
    """An echo server speaking the "binary" subprotocol, as websockify does.

    "headers" answers with the handshake's headers and path; "big <n>" sends n random bytes, then their
    sha256; "close <code>" closes with that code.
    """

    def __init__(self):
        self.closes: list[int | None] = []  # the close code each browser-side close arrived with
        self.server = serve(self.handle, "127.0.0.1", 0, subprotocols=["binary"], max_size=None,
                            compression=None)
        self.port = self.server.socket.getsockname()[1]

    def start(self) -> "SocketUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def handle(self, socket: ServerConnection) -> None:
        try:
            self.answer(socket)
        except ConnectionClosed:
            pass  # a close code other than 1000/1001 ends iteration with an error
        received = socket.protocol.close_rcvd
        self.closes.append(received.code if received else None)

    def answer(self, socket: ServerConnection) -> None:
        for message in socket:
            if message == "headers":
                socket.send(json.dumps({"path": socket.request.path,
                                        "headers": {k.lower(): v for k, v in socket.request.headers.raw_items()},
                                        "subprotocol": socket.subprotocol}))
            elif isinstance(message, str) and message.startswith("big "):
                frame = os.urandom(int(message.split()[1]))
                socket.send(frame)
                socket.send(hashlib.sha256(frame).hexdigest())
            elif isinstance(message, str) and message.startswith("close "):
                socket.close(int(message.split()[1]), "asked to")
                return
            else:
                socket.send(message)


# The sandbox root of the module's Daphne (conftest.py `live`): rows' ports are forwarded there too.
LIVE_SANDBOX_ROOT = Path(tempfile.gettempdir()) / "inspect-tests" / f"ide-live-{os.getpid()}"


def ready(port: int) -> dict:
    """A Sandbox.services entry for a service listening on `port`, which the rows' sandbox ("ref") forwards
    for the test process and for Daphne alike."""
    for root in (settings.SANDBOX_ROOT, LIVE_SANDBOX_ROOT):
        forward_port(root, "ref", port)
    return {"state": "ready", "port": port, "reason": ""}


def workspace_host(entry, session_id: int) -> str:
    """Session `session_id`'s workspace host as a browser sends it to `entry` (Daphne or the front)."""
    return f"s-{session_id}.{settings.WORKSPACE_HOST}:{entry.port}"


def signed_in(user, entry, session_id: int) -> dict[str, str]:
    """A browser's headers on session `session_id`'s workspace host, signed in there as `user` (the cookie its
    ticket gets, ide/workspace_hosts.py), with the platform's own cookies and an app's beside it as a confused
    browser might send them. Requests go to `entry.url` (Python resolves no *.localhost name) with this Host."""
    client = Client()
    client.force_login(user)
    host = workspace_host(entry, session_id)
    workspace = workspace_hosts.cookie_value(user, session_id)
    cookie = (f"{workspace_hosts.COOKIE_NAME}={workspace}; sessionid={client.cookies['sessionid'].value}; "
              "csrftoken=secret-csrf; messages=secret-msg; theme=light")
    return {"Host": host, "Cookie": cookie, "Origin": f"http://{host}"}


def open_socket(entry, path: str, headers: dict, **kwargs):
    """A WebSocket to `path` on the workspace host named by headers["Host"], connected to `entry`'s address."""
    host = headers["Host"]
    sock = socket.create_connection(("127.0.0.1", entry.port), timeout=10)
    others = {name: value for name, value in headers.items() if name.lower() != "host"}
    return connect(f"ws://{host}{path}", sock=sock, additional_headers=others, max_size=None, open_timeout=10,
                   **kwargs)


class CodeServer:
    """The pinned code-server from the sandbox tools, started with the bridge's own arguments and secret (that
    of the test rows' sandbox "ref"), one folder and `home` as its HOME. `headers`: what the proxy adds."""

    def __init__(self, folder: Path, home: Path):
        self.folder = folder
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.secret = Sandbox(backend_ref="ref").service_secret()
        self.headers = secret_cookie("ide", self.secret)

    def start(self) -> "CodeServer":
        self.process = subprocess.Popen(
            code_server_argv(tools_dir(), self.port, self.home, self.folder),
            env={**os.environ, "HOME": str(self.home), **code_server_env(self.secret)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until_answering(self.url + "/healthz", self.process, "code-server", 30)
        return self

    def stop(self) -> None:
        stop_group(self.process)
        try:  # VS Code's extension host can outlive code-server's SIGTERM
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
