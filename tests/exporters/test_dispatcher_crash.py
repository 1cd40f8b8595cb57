from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from _receiver_server import Reply, running_server, wait_until
from conftest import make_notification

from exporters.outbox import count_by_status, enqueue
from monitor.store import Store

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("_dispatch_process.py")
NOTIFICATIONS = 20
BLOCKED_REQUEST = 5


def start_dispatcher(database: Path, url: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(database), url],
        cwd=REPOSITORY,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_dispatcher_sigkill_mid_delivery_loses_nothing(store: Store) -> None:
    notifications = [
        make_notification(alert=f"Alert{index:02d}") for index in range(NOTIFICATIONS)
    ]
    with store.transaction() as connection:
        for notification in notifications:
            enqueue(connection, notification, ["hook"])
    in_flight = threading.Event()
    release = threading.Event()
    count_lock = threading.Lock()
    counter = {"requests": 0}

    def respond(request: Any) -> Reply:
        with count_lock:
            counter["requests"] += 1
            number = counter["requests"]
        if number == BLOCKED_REQUEST:
            in_flight.set()
            release.wait(20)
        return Reply(200)

    with running_server(respond) as server:
        first = start_dispatcher(store.path, server.url)
        try:
            wait_until(in_flight.is_set, timeout=30)
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
            release.set()
        blocked_key = server.snapshot()[BLOCKED_REQUEST - 1].json()["notifications"][0][
            "idempotency_key"
        ]

        with store.read() as connection:
            before_restart = count_by_status(connection, "hook")
        second = start_dispatcher(store.path, server.url)
        try:
            wait_until(
                lambda: count_by_status_now(store) == {"delivered": NOTIFICATIONS},
                timeout=30,
            )
        finally:
            second.kill()
            second.wait(10)
        keys = [
            item["idempotency_key"]
            for request in server.snapshot()
            for item in request.json()["notifications"]
        ]

    repeated = {key for key, count in collections.Counter(keys).items() if count > 1}
    assert before_restart["delivered"] == BLOCKED_REQUEST - 1
    assert before_restart["pending"] == NOTIFICATIONS - BLOCKED_REQUEST + 1
    assert set(keys) == {n.idempotency_key for n in notifications}
    assert repeated == {blocked_key}


def count_by_status_now(store: Store) -> dict[str, int]:
    with store.read() as connection:
        return count_by_status(connection, "hook")
