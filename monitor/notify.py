"""Wiring of routing, the outbox and the dispatcher for one daemon."""

from __future__ import annotations

import logging
import sqlite3

from prometheus_client import CollectorRegistry

from exporters import outbox
from exporters._outbox_metrics import OutboxMetrics
from exporters.dispatcher import Dispatcher
from exporters.notification import Notification
from exporters.receivers import Receiver, build_receivers
from exporters.routing import Router
from monitor.config.model import Config
from monitor.store import Store

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0


class Notifier:
    """Route notifications into the outbox and run the dispatcher.

    Parameters
    ----------
    config : Config
    store : Store
        Holds the outbox; its tables are created here.
    registry : CollectorRegistry
        Where delivery metrics are registered.
    """

    def __init__(
        self, config: Config, store: Store, registry: CollectorRegistry
    ) -> None:
        self.store = store
        with store.transaction() as connection:
            outbox.create_tables(connection)
        self.router = Router(config.route)
        self.receivers = self._build(config)
        self.metrics = OutboxMetrics(registry, store, self.receivers)
        self.dispatcher = Dispatcher(store, self.receivers, metrics=self.metrics)

    @staticmethod
    def _build(config: Config) -> dict[str, Receiver]:
        return build_receivers(config.receivers, base_dir=config.path.parent)

    def enqueue(self, connection: object, notification: Notification) -> None:
        """Write ``notification`` for each routed receiver in the open transaction."""
        assert isinstance(connection, sqlite3.Connection)
        targets = self.router.route(notification.labels)
        if not targets:
            logger.warning(
                "No route matches alert %s %s; the notification is not sent",
                notification.alert,
                dict(notification.labels),
            )
            return

        outbox.enqueue(connection, notification, targets)

    def start(self) -> None:
        self.dispatcher.start()

    def wake(self) -> None:
        self.dispatcher.wake()

    def stop(self) -> None:
        if not self.dispatcher.stop(STOP_TIMEOUT_SECONDS):
            logger.warning(
                "Delivery threads did not stop within %.0fs; pending "
                "notifications stay in the outbox",
                STOP_TIMEOUT_SECONDS,
            )

    def reconfigure(self, config: Config) -> None:
        """Swap routes and receivers after a reload; the outbox stays."""
        receivers = self._build(config)
        self.stop()
        self.router = Router(config.route)
        self.receivers = receivers
        self.dispatcher = Dispatcher(self.store, receivers, metrics=self.metrics)
        self.dispatcher.start()
