"""Durations written as ``30s``, ``5m``, ``1h30m``, ``7d`` or ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")


class DurationError(ValueError):
    """A text is not a valid duration."""


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``1h30m`` into a ``timedelta``.

    Units are ``ms``, ``s``, ``m``, ``h``, ``d`` and ``w``, each used at most
    once, from the largest to the smallest, as in Prometheus.

    Raises
    ------
    DurationError
        If the text is empty, has an unknown unit, repeats a unit or lists
        units out of order.
    """
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise DurationError(
            f"Invalid duration {text!r}; write a number and a unit, such as "
            "30s, 5m, 1h30m, 7d or 2w."
        )
    seconds = 0.0
    previous = float("inf")
    for number, unit in _PART.findall(text):
        size = _UNIT_SECONDS[unit]
        if size >= previous:
            raise DurationError(
                f"Invalid duration {text!r}; give each unit once, from the "
                "largest to the smallest, such as 1h30m."
            )
        previous = size
        seconds += int(number) * size
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Format a ``timedelta`` in the notation that ``parse_duration`` reads."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
