"""A small HTTP server on the host's loopback whose every GET gets what a function of the path says."""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# path -> (body, content type, extra headers)
Answer = Callable[[str], tuple[bytes, str, list[tuple[str, str]]]]


class AnsweringServer:
    def __init__(self, answer: Answer):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body, kind, extra = answer(self.path)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
