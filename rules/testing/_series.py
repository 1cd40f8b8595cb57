"""The compact notation of test input: series selectors and expanding values."""

from __future__ import annotations

import math
import re

from monitor.series import SeriesKey, make_labels

MISSING: float | None = None
"""A step without a sample, written ``_``."""

STALE = math.nan
"""A sample without a value, written ``stale``; expressions skip NaN values."""

_SERIES = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\{(.*)\})?\s*")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_EXPANDING = re.compile(rf"({_NUMBER})(?:([-+])({_NUMBER}))?x(\d+)")
_REPEATED_MISSING = re.compile(r"_x(\d+)")


class NotationError(ValueError):
    """A series selector or values text is invalid."""


def parse_series(text: str) -> SeriesKey:
    """Parse ``orders{region="eu"}`` into a series key.

    Raises
    ------
    NotationError
        If the text is not a KPI name with optional ``{name="value", ...}``.
    """
    match = _SERIES.fullmatch(text)
    if match is None:
        raise NotationError(
            f"Invalid series {text!r}; write a KPI name with optional labels, "
            'such as orders{region="eu"}.'
        )

    labels: dict[str, str] = {}
    body = (match.group(2) or "").strip()
    position = 0
    while position < len(body):
        label = _LABEL.match(body, position)
        if label is None:
            raise NotationError(
                f"Invalid labels in series {text!r} at {body[position:]!r}; write "
                'name="value" pairs separated by commas.'
            )
        name, value = label.group(1), label.group(2)
        if name in labels:
            raise NotationError(f"Label {name!r} is repeated in series {text!r}.")
        labels[name] = bytes(value, "utf-8").decode("unicode_escape")
        position = label.end()
    return SeriesKey(match.group(1), make_labels(labels))


def expand_values(text: str) -> list[float | None]:
    """Expand ``1+1x3 _ stale 5x2`` into one entry per step.

    ``a+bxn`` gives ``a, a+b, ..., a+n*b`` (n + 1 values), ``a-bxn`` counts
    down, ``axn`` repeats ``a`` n + 1 times, ``_`` is a step without a
    sample, ``_xn`` is n such steps, and ``stale`` is a sample without a
    value (NaN).

    Raises
    ------
    NotationError
        If a token is not one of these forms.
    """
    steps: list[float | None] = []
    for token in text.split():
        if token == "_":
            steps.append(MISSING)
            continue
        if token == "stale":
            steps.append(STALE)
            continue

        missing = _REPEATED_MISSING.fullmatch(token)
        if missing is not None:
            steps.extend([MISSING] * int(missing.group(1)))
            continue

        expanding = _EXPANDING.fullmatch(token)
        if expanding is not None:
            start = float(expanding.group(1))
            sign = -1.0 if expanding.group(2) == "-" else 1.0
            increment = sign * float(expanding.group(3) or 0.0)
            count = int(expanding.group(4))
            steps.extend(start + index * increment for index in range(count + 1))
            continue

        try:
            value = float(token)
        except ValueError:
            raise NotationError(
                f"Invalid value {token!r}; write a number, a+bxn, a-bxn, axn, _, "
                "_xn or stale."
            ) from None
        if math.isnan(value):
            raise NotationError(
                f"Invalid value {token!r}; write stale for a sample without a value."
            )
        steps.append(value)
    return steps
