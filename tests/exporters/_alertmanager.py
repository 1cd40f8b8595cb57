"""Start a real Alertmanager on 127.0.0.1 for tests.

``alertmanager_process`` skips the test when the binary is missing, unless
``KRWATCH_REQUIRE_INTEGRATION=1`` is set, in which case it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from _receiver_server import free_port

BINARY_CANDIDATES = ("prometheus-alertmanager", "alertmanager")
START_TIMEOUT_SECONDS = 30.0

MINIMAL_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
"""


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v2/alerts", params=filters, timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def find_binary() -> str:
    """Return the Alertmanager binary, or skip (or fail) the test."""
    for name in BINARY_CANDIDATES:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
        )
        if found:
            return found

    message = (
        "Alertmanager is not installed (looked for "
        f"{', '.join(BINARY_CANDIDATES)}); install prometheus-alertmanager."
    )
    if os.environ.get("KRWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def alertmanager_process(work_dir: Path) -> Iterator[Alertmanager]:
    """Run Alertmanager with a minimal config until the block ends."""
    binary = find_binary()
    config = work_dir / "alertmanager.yml"
    config.write_text(MINIMAL_CONFIG, encoding="utf-8")
    storage = work_dir / "alertmanager-data"
    storage.mkdir()
    port = free_port()
    log_path = work_dir / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Alertmanager(
        url=f"http://127.0.0.1:{port}", process=process, log_path=log_path
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(server: Alertmanager) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"Alertmanager exited with {server.process.returncode}: "
                f"{server.log_path.read_text(errors='replace')}"
            )
        try:
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"Alertmanager not ready within {START_TIMEOUT_SECONDS}s.")
