"""The HTTP server: /metrics, health checks, reload, the API and the status page."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 10.0
"""A client that sends nothing for this long, such as a body shorter than its
Content-Length, has its connection closed."""
JSON_TYPE = "application/json; charset=utf-8"


STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods whose routes require the bearer token unless a route opts out."""


@dataclass(frozen=True, kw_only=True)
class Response:
    """One HTTP response: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = HTTPStatus.OK) -> Response:
        text = json.dumps(payload, default=str, allow_nan=False)
        return cls(status=status, body=text.encode())

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"status": "error", "error": message}, status)


Handler = Callable[[dict[str, Any]], Response]


class Routes:
    """Map (method, path) to handlers, and check the bearer token.

    A handler receives the JSON request body as a dict, with the raw query
    string under ``"_query"`` and the request path under ``"_path"``.

    Parameters
    ----------
    registry : CollectorRegistry
        Registry that ``GET /metrics`` serves.
    token : callable
        Returns the configured API token, or None when no token is set. It
        is called on each request, so a reload that changes the token takes
        effect at once.
    """

    def __init__(
        self, registry: CollectorRegistry, token: Callable[[], str | None]
    ) -> None:
        self.registry = registry
        self._token = token
        self._handlers: dict[tuple[str, str], tuple[Handler, bool]] = {}
        self._prefixes: list[tuple[str, str, Handler, bool]] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        protected: bool | None = None,
    ) -> None:
        """Route ``method path`` to ``handler``.

        Parameters
        ----------
        protected : bool, optional
            Whether the route requires ``Authorization: Bearer <token>`` when a
            token is configured. Defaults to True for POST, PUT, PATCH and
            DELETE, so every endpoint that changes state is protected unless
            it opts out, and to False for GET.
        """
        self._handlers[(method, path)] = (handler, _protect(method, protected))

    def add_prefix(
        self,
        method: str,
        prefix: str,
        handler: Handler,
        *,
        protected: bool | None = None,
    ) -> None:
        """Route every ``method`` request whose path starts with ``prefix``.

        Exact routes win over prefix routes, and a longer prefix wins over a
        shorter one. The handler reads the full path from ``body["_path"]``.
        """
        self._prefixes.append((method, prefix, handler, _protect(method, protected)))
        self._prefixes.sort(key=lambda entry: len(entry[1]), reverse=True)

    def endpoints(self) -> list[tuple[str, str]]:
        """Return every routed (method, path), with prefixes ending in ``/``.

        ``GET /metrics`` is included because ``dispatch`` serves it itself.
        """
        routed = [("GET", "/metrics"), *self._handlers]
        routed.extend((method, prefix) for method, prefix, _, _ in self._prefixes)
        return sorted(set(routed))

    def _find(self, method: str, path: str) -> tuple[Handler, bool] | None:
        entry = self._handlers.get((method, path))
        if entry is not None:
            return entry

        for entry_method, prefix, handler, protected in self._prefixes:
            if entry_method == method and path.startswith(prefix):
                return handler, protected
        return None

    def _path_known(self, path: str) -> bool:
        if path == "/metrics" or any(known == path for _, known in self._handlers):
            return True
        return any(path.startswith(prefix) for _, prefix, _, _ in self._prefixes)

    def dispatch(
        self, method: str, path: str, headers: Any, body: dict[str, Any]
    ) -> Response:
        if method == "GET" and path == "/metrics":
            return Response(
                status=HTTPStatus.OK,
                body=generate_latest(self.registry),
                content_type=CONTENT_TYPE_LATEST,
            )

        entry = self._find(method, path)
        if entry is None:
            if self._path_known(path):
                return Response.error(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}."
                )
            return Response.error(HTTPStatus.NOT_FOUND, f"No endpoint at {path}.")

        handler, protected = entry
        if protected and not self._authorised(headers):
            denied = Response.error(
                HTTPStatus.UNAUTHORIZED,
                f"{method} {path} requires the API token; send the header "
                "Authorization: Bearer <token> with the server.api_token value.",
            )
            return Response(
                status=denied.status,
                body=denied.body,
                headers={"WWW-Authenticate": 'Bearer realm="krwatch"'},
            )
        return handler(body)

    def _authorised(self, headers: Any) -> bool:
        token = self._token()
        if token is None:
            return True
        scheme, _, credentials = headers.get("Authorization", "").partition(" ")
        # HTTP authentication schemes are case-insensitive; the token is not.
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), token.encode())


def _protect(method: str, protected: bool | None) -> bool:
    if protected is not None:
        return protected
    return method in STATE_CHANGING_METHODS


def _make_handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "krwatch"
        timeout = REQUEST_TIMEOUT_SECONDS

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            body, problem = self._read_body()
            if body is None:
                response = problem or Response.error(
                    HTTPStatus.BAD_REQUEST, "The request body is not a JSON object."
                )
            else:
                body["_query"] = parts.query
                body["_path"] = parts.path
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
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def _read_body(self) -> tuple[dict[str, Any] | None, Response | None]:
            """Return the JSON object of the body, or the error response."""
            header = self.headers.get("Content-Length") or "0"
            try:
                length = int(header)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                return None, Response.error(
                    HTTPStatus.BAD_REQUEST,
                    f"Invalid Content-Length {header[:40]!r}; send the body "
                    "length in bytes.",
                )
            if length == 0:
                return {}, None
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                return None, Response.error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"The request body has {length} bytes; the limit is "
                    f"{MAX_REQUEST_BYTES}.",
                )
            try:
                payload = json.loads(self.rfile.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                return None, None
            return (payload, None) if isinstance(payload, dict) else (None, None)

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
