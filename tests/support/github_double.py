"""A double of GitHub's REST API as an Enterprise Server serves it (under /api/v3), on the host's loopback: what
the tests need of it, answered as GitHub answers (JSON bodies, 404 for what the token's person may not see)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class GitHubDouble:
    def __init__(self):
        self.memberships: dict[str, dict[str, str]] = {}  # token -> {org (lower case): "active" | "pending"}
        self.requests: list[tuple[str, str]] = []  # (path, Authorization header)
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                double.requests.append((self.path, self.headers.get("Authorization", "")))
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                prefix = "/api/v3/user/memberships/orgs/"
                if token not in double.memberships:
                    return self.answer(401, {"message": "Bad credentials"})
                if self.path.startswith(prefix):
                    org = self.path.removeprefix(prefix).lower()
                    state = double.memberships[token].get(org)
                    if state is not None:
                        return self.answer(200, {"state": state, "role": "member", "organization": {"login": org}})
                return self.answer(404, {"message": "Not Found"})

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
