"""Notification receivers, one module per type, registered by type name.

``RECEIVER_TYPES`` maps each ``type`` of the ``receivers:`` section to its
``Receiver`` class; the config loader reads the class's ``settings_class``
to parse the receiver's keys.
"""

from __future__ import annotations

from pathlib import Path

import requests

from exporters.receivers.alertmanager import AlertmanagerReceiver
from exporters.receivers.base import DeliveryError, Receiver, create_session
from exporters.receivers.log import LogReceiver
from exporters.receivers.pagerduty import PagerDutyReceiver
from exporters.receivers.slack import SlackReceiver
from exporters.receivers.webhook import WebhookReceiver
from monitor.config.model import ReceiverConfig

RECEIVER_TYPES: dict[str, type[Receiver]] = {
    "log": LogReceiver,
    "webhook": WebhookReceiver,
    "pagerduty": PagerDutyReceiver,
    "alertmanager": AlertmanagerReceiver,
    "slack": SlackReceiver,
}

__all__ = ["RECEIVER_TYPES", "DeliveryError", "Receiver", "build_receivers"]


def build_receivers(
    configs: tuple[ReceiverConfig, ...] | list[ReceiverConfig],
    *,
    base_dir: Path,
    session: requests.Session | None = None,
) -> dict[str, Receiver]:
    """Create one receiver per configured entry, sharing one HTTP session.

    Raises
    ------
    ValueError
        If a type is not registered or its settings have the wrong class.
    """
    shared = session or create_session()
    receivers: dict[str, Receiver] = {}
    for config in configs:
        receiver_class = RECEIVER_TYPES.get(config.type)
        if receiver_class is None:
            raise ValueError(
                f"Receiver {config.name!r} has unknown type {config.type!r}; use "
                f"one of {', '.join(sorted(RECEIVER_TYPES))}."
            )

        settings = config.settings
        if settings is None:
            settings = receiver_class.settings_class()
        if not isinstance(settings, receiver_class.settings_class):
            raise ValueError(
                f"Receiver {config.name!r} of type {config.type!r} has settings "
                f"of class {type(settings).__name__}; the config loader must "
                f"build {receiver_class.settings_class.__name__}."
            )

        receivers[config.name] = receiver_class(
            config.name, settings, session=shared, base_dir=base_dir
        )
    return receivers
