"""Timestamp parsing shared by sources: epochs, ISO 8601 and datetimes.

Every result is epoch seconds, so it is timezone-aware UTC by definition.
Naive timestamps are read in the source's time zone. At a daylight saving
change, an ambiguous wall time (one that occurs twice when clocks go back)
is read as its first occurrence, and a wall time that does not exist (skipped
when clocks go forward) is read with the offset before the change, which is
the same instant as the wall time shifted forward by the gap.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.errors import FieldValueError, SourceError

EPOCH_MILLISECONDS_ABOVE = 1e11
"""Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138."""


def time_zone(name: str, source: str) -> tzinfo:
    """Return the IANA time zone ``name`` or raise ``SourceError``."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceError(
            "invalid_timezone",
            f"Unknown time zone {name!r} in source {source!r}; use an IANA name "
            "such as UTC or Europe/Berlin.",
        ) from None


def check_timezone(name: str, field: str = "timezone") -> None:
    """Raise ``FieldValueError`` for ``field`` unless ``name`` is an IANA time zone."""
    try:
        time_zone(name, "")
    except SourceError:
        raise FieldValueError(
            field,
            f"Unknown time zone {name!r}; use an IANA name such as UTC or "
            "Europe/Berlin.",
        ) from None


def parse_timestamp(raw: Any, what: str, zone: tzinfo = UTC) -> float:
    """Return epoch seconds from an epoch number, ISO 8601 text or a datetime.

    Numbers above ``EPOCH_MILLISECONDS_ABOVE`` are epoch milliseconds. Naive
    ISO text and naive datetimes are read in ``zone``; a date is its midnight
    in ``zone``.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        number = float(raw)
        if not math.isfinite(number):
            raise SourceError("invalid_timestamp", f"{what} is {raw!r}.")
        return number / 1000.0 if abs(number) > EPOCH_MILLISECONDS_ABOVE else number

    if isinstance(raw, datetime):
        return _aware(raw, zone).timestamp()

    if isinstance(raw, date):
        return _aware(datetime.combine(raw, time()), zone).timestamp()

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
        return _aware(parsed, zone).timestamp()

    raise SourceError("invalid_timestamp", f"{what} is {raw!r}, not a time.")


def _aware(moment: datetime, zone: tzinfo) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # fold=0 picks the first of two ambiguous wall times.
        return moment.replace(tzinfo=zone, fold=0)
    return moment
