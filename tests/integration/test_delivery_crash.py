"""krwatch killed with SIGKILL while a delivery is in flight loses nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration._processes import Krwatch, free_port, recorder, wait_for
from tests.integration.test_restart import write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "apac", "latam", "mena")
HOLD_SECONDS = 30.0
"""Maximum time the webhook keeps a request open before it responds."""


class HoldingWebhook:
    """A webhook that holds requests until released, recording every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                webhook.arrived.set()
                webhook.release.wait(HOLD_SECONDS)
                webhook.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def keys(self) -> list[tuple[str, str]]:
        return [
            (n["fingerprint"], n["idempotency_key"])
            for body in self.bodies
            for n in body["notifications"]
            if n["state"] == "firing"
        ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[HoldingWebhook]:
    server = HoldingWebhook()
    yield server
    server.close()


def test_kill_during_delivery_loses_nothing(
    tmp_path: Path, webhook: HoldingWebhook
) -> None:
    with recorder() as kpi_api:
        kpi_api.payload = {"data": [{"region": r, "open": 150} for r in REGIONS]}
        port = free_port()
        config = write_config(tmp_path, port, kpi_api.url, webhook.url, "0s")
        config.write_text(
            config.read_text().replace("timeout: 2s\nroute:", "timeout: 60s\nroute:")
        )
        krwatch = Krwatch(config, port, tmp_path / "krwatch.log")
        krwatch.start()
        try:
            wait_for(
                webhook.arrived.is_set, 60, "the first delivery to reach the webhook"
            )
            krwatch.kill()
            # The held request completes after krwatch died, so its outcome was
            # never stored. The restarted dispatcher must send it again.
            webhook.release.set()
            krwatch.start()
            wait_for(
                lambda: len({f for f, _ in webhook.keys()}) == len(REGIONS),
                60,
                "a firing notification for every region",
            )
        finally:
            krwatch.stop()

    keys = webhook.keys()
    assert len({fingerprint for fingerprint, _ in keys}) == len(REGIONS)
    # The batch in flight at the kill arrived twice: once held, once resent.
    assert len(keys) > len(set(keys))
    # At least once: a repeat carries the same idempotency key, so a receiver
    # counts one incident per alert.
    by_fingerprint: dict[str, set[str]] = {}
    for fingerprint, key in keys:
        by_fingerprint.setdefault(fingerprint, set()).add(key)
    assert all(len(found) == 1 for found in by_fingerprint.values()), by_fingerprint
