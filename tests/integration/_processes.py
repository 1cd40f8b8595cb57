"""Real processes for integration tests: krwatch, Prometheus, local HTTP servers.

A test that needs a Debian binary that is missing skips with the reason,
unless KRWATCH_REQUIRE_INTEGRATION=1, in which case it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

KRWATCH = [sys.executable, "-m", "monitor"]
REPOSITORY = Path(__file__).resolve().parents[2]


def require_binary(name: str) -> str:
    """Return the path of a Debian binary, or skip (fail in CI) without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed; run apt-get install prometheus prometheus-alertmanager."
    if os.environ.get("KRWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (OSError, ValueError, KeyError, urllib.error.URLError) as error:
            last_error = error
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(
        f"Timed out after {timeout}s waiting for {what} (last error: {last_error!r})."
    )


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def get_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


class Recorder:
    """A local HTTP server that returns fixed JSON and records requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.payload: Any = {}
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                data = json.dumps(recorder.payload).encode()
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def json_bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests if r["body"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.close()


class Krwatch:
    """``krwatch run`` as a subprocess."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The child keeps its own copy of the descriptor, so the parent's
        # closes at once instead of leaking until garbage collection.
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [*KRWATCH, "run", "-c", str(self.config)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=REPOSITORY,
            )
        wait_for(self._ready, 30, "krwatch /-/ready")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"krwatch exited with {self.process.returncode}:\n{self.log.read_text()}"
            )
        return bool(get_json(self.url + "/-/ready", timeout=1)["status"] == "ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


class Prometheus:
    """A real Prometheus server on 127.0.0.1 that scrapes the given target."""

    def __init__(self, work_dir: Path, scrape_target: str) -> None:
        self.binary = require_binary("prometheus")
        self.port = free_port()
        self.config = work_dir / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: krwatch\n"
            f"    static_configs:\n      - targets: ['{scrape_target}']\n"
        )
        self.data = work_dir / "prometheus-data"
        self.log = work_dir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: get_text(self.url + "/-/ready", timeout=1),
            60,
            "Prometheus /-/ready",
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        return list(get_json(url)["data"]["result"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
