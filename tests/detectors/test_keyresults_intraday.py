"""Tests that a weekly key result forecast stays steady over the hours of a day."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from detectors.keyresults import ErrorPool, KeyResultSpec, forecast_key_result
from detectors.keyresults._steps import (
    DAY_SECONDS,
    HOUR_SECONDS,
    WEEK_SECONDS,
    booked_share,
    choose_step,
)

START = 1_704_067_200.0  # 2024-01-01T00:00:00Z, a Monday
HALF_HOUR = 1800.0
HISTORY_WEEKS = 10
# Relative demand per weekday, Monday first: a quiet start of the week and a
# busy Friday and Saturday.
WEEKDAY_FACTORS = np.array([0.75, 0.9, 0.95, 1.0, 1.15, 1.2, 0.95])


def _demand_series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return half-hourly demand with a day profile, weekday levels and noise.

    The day profile has a deep night trough and an evening peak, and the
    night after Sunday is deeper still, which is the weekly pattern that an
    hour-of-day season alone cannot hold.
    """
    rng = np.random.default_rng(seed)
    times = START + np.arange(-HISTORY_WEEKS * 7 * 48, 7 * 48) * HALF_HOUR
    hour = np.mod(times, DAY_SECONDS) / HOUR_SECONDS
    weekday = np.mod(np.floor((times - START) / DAY_SECONDS), 7).astype(int)
    profile = 0.25 + 0.75 * np.exp(-(((hour - 18.0) / 5.0) ** 2))
    monday_night = (weekday == 0) & (hour < 7.0)
    profile = np.where(monday_night, 0.6 * profile, profile)
    values = 10_000.0 * WEEKDAY_FACTORS[weekday] * profile
    values *= rng.normal(1.0, 0.05, times.size)

    return times, values


def _week_spec(target: float) -> KeyResultSpec:
    return KeyResultSpec(
        measure="cumulative",
        direction="increase",
        baseline=0.0,
        target=target,
        start=START,
        due=START + WEEK_SECONDS,
    )


def test_weekly_sum_forecast_stable_within_day() -> None:
    """Median and probability stay in a band over two-hourly evaluations.

    On this series, hourly steps gave medians from 0.39 to 1.06 times the
    week's total and probabilities from 0.02 to 0.59 over the first day.
    """
    times, values = _demand_series(seed=1)
    actual = float(values[(times >= START) & (times < START + WEEK_SECONDS)].sum())
    spec = _week_spec(target=actual)
    pool = ErrorPool()
    for day in range(3):
        medians, probabilities = [], []
        for hour in range(0, 24, 2):
            now = START + day * DAY_SECONDS + hour * HOUR_SECONDS
            seen = times <= now
            pool.update(
                times[seen], values[seen], now, key="demand", measure="cumulative"
            )
            result = forecast_key_result(
                spec, times[seen], values[seen], now, error_pool=pool
            )
            medians.append(result.forecast)
            probabilities.append(result.attainment_probability)
        median_band = (max(medians) - min(medians)) / actual
        probability_band = max(probabilities) - min(probabilities)
        assert median_band < 0.02, f"day {day}: medians {medians}"
        assert probability_band < 0.15, f"day {day}: probabilities {probabilities}"
        assert min(medians) > 0.9 * actual, f"day {day}: medians {medians}"
        assert max(medians) < 1.1 * actual, f"day {day}: medians {medians}"


def test_weekly_sum_forecast_uses_daily_steps() -> None:
    times, values = _demand_series(seed=2)
    now = START + 9 * HOUR_SECONDS
    seen = times <= now
    result = forecast_key_result(_week_spec(1e6), times[seen], values[seen], now)
    assert "7-step season" in result.reason


@pytest.mark.parametrize(
    ("measure", "span_days", "expected"),
    [
        ("cumulative", 7.0, DAY_SECONDS),
        ("cumulative", 6.5, HOUR_SECONDS),
        ("level", 7.0, HOUR_SECONDS),
        ("level", 14.0, HOUR_SECONDS),
        ("level", 15.0, DAY_SECONDS),
    ],
    ids=["sum-week", "sum-under-week", "level-week", "level-2-weeks", "level-long"],
)
def test_choose_step_span_and_measure(
    measure: Literal["level", "cumulative"], span_days: float, expected: float
) -> None:
    spec = KeyResultSpec(
        measure=measure,
        direction="increase",
        baseline=0.0,
        target=1.0,
        start=START,
        due=START + span_days * DAY_SECONDS,
    )
    times = START - np.arange(100)[::-1] * HALF_HOUR
    assert choose_step(spec, times) == expected


def test_booked_share_follows_day_profile() -> None:
    """A KPI that books three quarters of its day after 18:00 is behind at noon."""
    times = START + np.arange(-28 * 24, 0) * HOUR_SECONDS
    hour = np.mod(times, DAY_SECONDS) / HOUR_SECONDS
    values = np.where(hour >= 18.0, 3.0 * 18.0 / 6.0, 1.0)
    share = booked_share(
        times,
        values,
        step_start=START,
        offset=12 * HOUR_SECONDS - 1.0,
        step_seconds=DAY_SECONDS,
    )
    assert share == pytest.approx(12.0 / (18.0 + 3.0 * 18.0))


def test_booked_share_uses_same_weekday() -> None:
    """Mondays book their first half day slower than the other weekdays."""
    times = START + np.arange(-28 * 24, 0) * HOUR_SECONDS
    hour = np.mod(times, DAY_SECONDS) / HOUR_SECONDS
    weekday = np.mod(np.floor((times - START) / DAY_SECONDS), 7)
    values = np.where((weekday == 0) & (hour < 12.0), 1.0, 3.0)
    share = booked_share(
        times,
        values,
        step_start=START,
        offset=12 * HOUR_SECONDS - 1.0,
        step_seconds=DAY_SECONDS,
    )
    assert share == pytest.approx(12.0 / (12.0 + 36.0))


@pytest.mark.parametrize(
    "case",
    ["negative", "no-history", "step-start"],
)
def test_booked_share_falls_back_to_elapsed_time(case: str) -> None:
    times = START + np.arange(-28 * 24, 0) * HOUR_SECONDS
    hour = np.mod(times, DAY_SECONDS) / HOUR_SECONDS
    values = np.where(hour >= 18.0, 9.0, 1.0)
    offset = 6 * HOUR_SECONDS
    if case == "negative":
        values[5] = -1.0
    elif case == "no-history":
        times, values = times[-10:], values[-10:]
    else:
        offset = 0.0
    share = booked_share(
        times, values, step_start=START, offset=offset, step_seconds=DAY_SECONDS
    )
    assert share == pytest.approx(offset / DAY_SECONDS)
