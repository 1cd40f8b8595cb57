"""Timestamp parsing shared by sources: epochs and ISO 8601, always UTC."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from monitor.errors import SourceError

EPOCH_MILLISECONDS_ABOVE = 1e11
"""Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138."""


def parse_timestamp(raw: Any, what: str) -> float:
    """Return epoch seconds from epoch seconds, epoch milliseconds or ISO 8601.

    A naive ISO timestamp is read as UTC.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        number = float(raw)
        if not math.isfinite(number):
            raise SourceError("invalid_timestamp", f"{what} is {raw!r}.")
        return number / 1000.0 if abs(number) > EPOCH_MILLISECONDS_ABOVE else number

    if isinstance(raw, str):
        text = raw.strip()
        try:
            return parse_timestamp(float(text), what)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise SourceError(
                "invalid_timestamp",
                f"{what} {raw[:60]!r} is neither an epoch number nor ISO 8601.",
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()

    raise SourceError("invalid_timestamp", f"{what} is {raw!r}, not a time.")
