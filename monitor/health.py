"""Source health: up or failing, since when, and why; rate-limited logging."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS = 300.0
"""A repeated error of one source and reason is logged at most this often."""


@dataclass
class SourceHealth:
    """Mutable health record of one source, updated after each poll."""

    name: str
    type: str
    up: bool = False
    polls: int = 0
    last_poll: float | None = None
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_duration_seconds: float | None = None
    samples: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "up": self.up,
            "polls": self.polls,
            "last_poll": self.last_poll,
            "last_success": self.last_success,
            "failing_since": self.failing_since,
            "last_error": self.last_error,
            "last_error_reason": self.last_error_reason,
            "last_duration_seconds": self.last_duration_seconds,
            "samples": self.samples,
        }


@dataclass
class RateLimitedLog:
    """Log a repeated warning once per key and interval, counting the rest."""

    interval_seconds: float = LOG_INTERVAL_SECONDS
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def warning(self, source: str, reason: str, message: str) -> bool:
        """Log ``message`` unless the same source and reason logged recently.

        Returns whether the line was written.
        """
        key = (source, reason)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False

            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            logger.warning(
                "Source %s: %s (%d more like it since the last report)",
                source,
                message,
                suppressed,
            )
        else:
            logger.warning("Source %s: %s", source, message)
        return True
