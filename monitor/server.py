"""The HTTP server: /metrics, health checks, reload, the API and the status page."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE

    @classmethod
    def json(cls, payload: Any, status: int = HTTPStatus.OK) -> Response:
        text = json.dumps(payload, default=str, allow_nan=False)
        return cls(status=status, body=text.encode())

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"status": "error", "error": message}, status)


Handler = Callable[[dict[str, Any]], Response]


class Routes:
    """Map (method, path) to handlers; POST handlers may require a token."""

    def __init__(
        self, registry: CollectorRegistry, token: Callable[[], str | None]
    ) -> None:
        self.registry = registry
        self._token = token
        self._handlers: dict[tuple[str, str], tuple[Handler, bool]] = {}

    def add(
        self, method: str, path: str, handler: Handler, *, protected: bool = False
    ) -> None:
        self._handlers[(method, path)] = (handler, protected)

    def dispatch(
        self, method: str, path: str, headers: Any, body: dict[str, Any]
    ) -> Response:
        if method == "GET" and path == "/metrics":
            return Response(
                status=HTTPStatus.OK,
                body=generate_latest(self.registry),
                content_type=CONTENT_TYPE_LATEST,
            )

        entry = self._handlers.get((method, path))
        if entry is None:
            known = {p for m, p in self._handlers if p == path}
            if known:
                return Response.error(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}."
                )
            return Response.error(HTTPStatus.NOT_FOUND, f"No endpoint at {path}.")

        handler, protected = entry
        if protected and not self._authorised(headers):
            return Response.error(
                HTTPStatus.UNAUTHORIZED,
                "Missing or invalid bearer token; send Authorization: Bearer <token>.",
            )
        return handler(body)

    def _authorised(self, headers: Any) -> bool:
        token = self._token()
        if token is None:
            return True
        given = headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _make_handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "krwatch"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            body = self._read_body()
            if body is None:
                response = Response.error(
                    HTTPStatus.BAD_REQUEST, "The request body is not a JSON object."
                )
            else:
                body["_query"] = parts.query
                try:
                    response = routes.dispatch(method, parts.path, self.headers, body)
                except Exception:
                    logger.exception("Handling %s %s failed", method, parts.path)
                    response = Response.error(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error; see the log."
                    )
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def _read_body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length == 0:
                return {}
            if length > MAX_REQUEST_BYTES:
                return None
            try:
                payload = json.loads(self.rfile.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
            return payload if isinstance(payload, dict) else None

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("HTTP %s", format % args)

    return RequestHandler


class HttpServer:
    """Serve ``routes`` on ``host:port`` in a background thread."""

    def __init__(self, host: str, port: int, routes: Routes) -> None:
        self._server = ThreadingHTTPServer((host, port), _make_handler(routes))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="krwatch-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
