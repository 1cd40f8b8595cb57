"""Key result definitions and forecast results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

STATUSES = (
    "on_track",
    "at_risk",
    "off_track",
    "insufficient_data",
    "achieved",
    "missed",
)
"""Every value that :attr:`KeyResultForecast.status` can take."""

_MEASURES = ("level", "cumulative")
_DIRECTIONS = ("increase", "decrease")


@dataclass(frozen=True, kw_only=True)
class KeyResultSpec:
    """Definition of one key result, as the forecast uses it.

    Parameters
    ----------
    measure : {"level", "cumulative"}
        ``level`` scores the KPI value at the due date, ``cumulative`` the sum
        of the samples booked from ``start`` until ``due``.
    direction : {"increase", "decrease"}
        ``increase`` is met when the value at the due date is at least
        ``target``, ``decrease`` when it is at most ``target``.
    baseline, target : float
        Values that define progress 0 and progress 1.
    start, due : float
        Start and due date of the period, in epoch seconds UTC.

    Raises
    ------
    ValueError
        If ``measure`` or ``direction`` is not an allowed value, a number is
        not finite, or ``due`` is not after ``start``.
    """

    measure: Literal["level", "cumulative"]
    direction: Literal["increase", "decrease"]
    baseline: float
    target: float
    start: float
    due: float

    def __post_init__(self) -> None:
        if self.measure not in _MEASURES:
            raise ValueError(
                f"Key result measure {self.measure!r} is invalid; "
                f"use one of {', '.join(_MEASURES)}."
            )
        if self.direction not in _DIRECTIONS:
            raise ValueError(
                f"Key result direction {self.direction!r} is invalid; "
                f"use one of {', '.join(_DIRECTIONS)}."
            )
        for name in ("baseline", "target", "start", "due"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(
                    f"Key result {name} {value!r} is not a finite number; "
                    "set it to a finite value."
                )
        if self.due <= self.start:
            raise ValueError(
                f"Key result due date {self.due!r} is not after its start "
                f"{self.start!r}; set the due date after the start."
            )

    def meets_target(self, value: float) -> bool:
        """Return whether ``value`` at the due date meets the target."""
        if self.direction == "increase":
            return value >= self.target
        return value <= self.target


@dataclass(frozen=True, kw_only=True)
class KeyResultForecast:
    """Forecast and status of one key result at one evaluation.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`. Before the due date ``on_track`` means an
        attainment probability of at least 0.7, ``at_risk`` at least 0.4 and
        ``off_track`` below 0.4. From the due date on the outcome is known, so
        the status is ``achieved`` or ``missed``.
    current : float
        ``level``: the last sample value. ``cumulative``: the sum of the
        samples booked since the start.
    progress : float
        ``(current - baseline) / (target - baseline)``, not clipped; NaN when
        the target equals the baseline.
    expected_progress : float
        Where the linear glide path from start to due says progress should be
        now, in [0, 1].
    forecast : float
        Median predicted value at the due date; for ``cumulative`` the total
        over the period.
    lower_80, upper_80, lower_95, upper_95 : float
        Central 80% and 95% prediction intervals of the value at the due date.
    attainment_probability : float
        Probability that the value at the due date meets the target; NaN with
        insufficient data.
    shortfall : float
        How far the forecast falls short of the target in the key result's
        direction; positive means short. NaN with insufficient data.
    required_run_rate : float
        Change per day (``level``) or sum per day (``cumulative``) needed from
        now to the due date to reach the target; NaN from the due date on.
    decide_by : float or None
        Last date, in epoch seconds, on which the needed run rate is still
        within the best rate the KPI achieved in its own history, when the
        median forecast is followed until then. The due date itself when the
        median forecast meets the target. None when that rate is already out
        of reach, the outcome is known or the data is insufficient.
    reason : str
        One sentence: why the data is insufficient, or which model was used.
    trend_forecast : float
        Value at the due date on the least-squares line through the latest
        four observed steps (``cumulative``: the booked sum plus the line's
        sum over the remaining steps). A miss alert can require this line to
        miss the target as well, see :class:`AttainmentAlertState`. NaN with
        insufficient data.
    """

    status: str
    current: float
    progress: float
    expected_progress: float
    forecast: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    attainment_probability: float
    shortfall: float
    required_run_rate: float
    decide_by: float | None
    reason: str
    trend_forecast: float = math.nan
