from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Reply = tuple[int, str, bytes]


class LocalServer:
    """An HTTP server on 127.0.0.1 whose replies a test sets per path."""

    def __init__(self) -> None:
        self.replies: dict[str, Callable[[dict[str, Any]], Reply]] = {}
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply()

            def do_POST(self) -> None:
                self._reply()

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length) if length else b"",
                }
                server.requests.append(request)
                path = self.path.split("?")[0]
                handler = server.replies.get(path)
                if handler is None:
                    status, kind, body = 404, "text/plain", b"not found"
                else:
                    status, kind, body = handler(request)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def json(self, path: str, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.replies[path] = lambda _: (status, "application/json", body)

    def raw(self, path: str, status: int, kind: str, body: bytes) -> None:
        self.replies[path] = lambda _: (status, kind, body)


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()
