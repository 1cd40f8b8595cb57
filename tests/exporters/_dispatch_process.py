"""Run a dispatcher with one webhook receiver until killed.

Usage: python _dispatch_process.py DATABASE URL
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta
from pathlib import Path

from exporters.dispatcher import Dispatcher
from exporters.outbox import create_tables
from exporters.receivers.base import create_session
from exporters.receivers.webhook import WebhookReceiver, WebhookSettings
from monitor.secrets import Secret
from monitor.store import Store


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    database, url = sys.argv[1], sys.argv[2]
    store = Store(Path(database))
    with store.transaction() as connection:
        create_tables(connection)
    settings = WebhookSettings(
        url=Secret(url),
        timeout=timedelta(seconds=30),
        initial_backoff=timedelta(milliseconds=50),
        max_backoff=timedelta(milliseconds=200),
        max_batch_size=1,
    )
    receiver = WebhookReceiver("hook", settings, session=create_session())
    dispatcher = Dispatcher(store, {"hook": receiver}, poll_interval_seconds=0.05)
    dispatcher.start()
    sys.stderr.write("dispatcher ready\n")
    sys.stderr.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
