"""The ``log`` receiver: one JSON line per notification, to stdout or a file."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from exporters.errors import DeliveryError
from exporters.notification import Notification
from exporters.receivers.base import Receiver, ReceiverSettings

STDOUT = "stdout"


@dataclass(frozen=True, kw_only=True)
class LogSettings(ReceiverSettings):
    path: str = STDOUT
    """``stdout`` or a file path, relative to the configuration file; lines
    are appended and the folder must exist."""


class LogReceiver(Receiver):
    """Writes each notification as one JSON object per line."""

    type_name: ClassVar[str] = "log"
    settings_class: ClassVar[type[ReceiverSettings]] = LogSettings
    settings: LogSettings

    _lock = threading.Lock()

    @property
    def target(self) -> str:
        return STDOUT if self.settings.path == STDOUT else str(self.path)

    @property
    def path(self) -> Path | None:
        if self.settings.path == STDOUT:
            return None

        return self.base_dir / self.settings.path

    def deliver(self, notifications: Sequence[Notification]) -> None:
        lines = "".join(
            json.dumps(
                {"receiver": self.name, **notification.to_dict()},
                sort_keys=True,
                ensure_ascii=False,
            )
            + "\n"
            for notification in notifications
        )
        path = self.path
        with self._lock:
            if path is None:
                sys.stdout.write(lines)
                sys.stdout.flush()
                return

            try:
                with path.open("a", encoding="utf-8") as stream:
                    stream.write(lines)
            except OSError as error:
                raise DeliveryError(
                    f"Receiver {self.name!r}: cannot append to {str(path)!r}: "
                    f"{error.strerror}. Check that the folder exists and is "
                    "writable.",
                    retryable=True,
                ) from error
