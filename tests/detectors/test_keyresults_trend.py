"""Tests of the trend line that confirms key result miss alerts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.keyresults import KeyResultSpec, forecast_key_result
from detectors.keyresults._trend import trend_line

DAY = 86400.0
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DUE = START + 28 * DAY


def test_trend_line_uses_last_four_steps() -> None:
    # The first steps follow another line, which must not count.
    values = np.array([50.0, 0.0, 10.0, 12.0, 14.0, 16.0])
    assert trend_line(values, 3) == pytest.approx([18.0, 20.0, 22.0])


def test_trend_line_keeps_gaps_in_time() -> None:
    values = np.array([10.0, np.nan, 14.0, 16.0, np.nan, 20.0])
    assert trend_line(values, 2) == pytest.approx([22.0, 24.0])


def test_trend_line_needs_two_steps() -> None:
    values = np.array([np.nan, 5.0, np.nan])
    assert np.all(np.isnan(trend_line(values, 2)))


def _linear_daily(slope: float) -> tuple[np.ndarray, np.ndarray]:
    days = np.arange(-20, 7)
    return START + days * DAY + 3600.0, 100.0 + slope * days


@pytest.mark.parametrize(
    ("measure", "expected"),
    # Days 7 to 27 remain. Level: the line at day 27. Cumulative: days 0 to
    # 6 booked plus the line's sum over days 7 to 27.
    [
        ("level", 100.0 + 2.0 * 27),
        ("cumulative", sum(100.0 + 2.0 * day for day in range(28))),
    ],
    ids=["level", "cumulative"],
)
def test_forecast_trend_extends_recent_line(measure: str, expected: float) -> None:
    times, values = _linear_daily(slope=2.0)
    spec = KeyResultSpec(
        measure=measure,  # type: ignore[arg-type]
        direction="increase",
        baseline=100.0,
        target=200.0,
        start=START,
        due=DUE,
    )
    result = forecast_key_result(spec, times, values, START + 7 * DAY)
    assert result.trend_forecast == pytest.approx(expected)


def test_forecast_trend_nan_with_short_history() -> None:
    times, values = _linear_daily(slope=1.0)
    spec = KeyResultSpec(
        measure="level",
        direction="increase",
        baseline=100.0,
        target=200.0,
        start=START,
        due=DUE,
    )
    result = forecast_key_result(spec, times[:2], values[:2], START - 18 * DAY)
    assert result.status == "insufficient_data"
    assert math.isnan(result.trend_forecast)
