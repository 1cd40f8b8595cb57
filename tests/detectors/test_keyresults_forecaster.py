"""Tests of the key result forecaster that reuses fitted models."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.keyresults import (
    ErrorPool,
    KeyResultForecaster,
    KeyResultSpec,
    forecast_key_result,
)

HOUR = 3600.0
DAY = 86400.0
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DUE = START + 91 * DAY


def _hourly_series(
    *, seed: int, days_before: int = 60, days_after: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """Return an hourly random walk with a slight upward drift, all positive."""
    rng = np.random.default_rng(seed)
    hours = np.arange(-24 * days_before, 24 * days_after)
    values = 500.0 + np.cumsum(rng.normal(0.02, 1.0, hours.size))
    return START + hours * HOUR + 60.0, values


def _spec(measure: str, **changes: object) -> KeyResultSpec:
    fields: dict[str, object] = {
        "measure": measure,
        "direction": "increase",
        "baseline": 500.0,
        "target": 510.0 if measure == "level" else 500.0 * 24 * 91,
        "start": START,
        "due": DUE,
    }
    fields.update(changes)
    return KeyResultSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("measure", ["level", "cumulative"])
def test_forecaster_equals_uncached_forecast(measure: str) -> None:
    times, values = _hourly_series(seed=1)
    forecaster = KeyResultForecaster()
    spec = _spec(measure)
    # Every quarter of an hour over two days, inside and across daily steps.
    for now in START + 10 * DAY + np.arange(0, 2 * DAY, 900.0):
        cached = forecaster.forecast("kr", spec, times, values, now)
        assert cached == forecast_key_result(spec, times, values, now)
    assert forecaster.fit_count == 2


@pytest.mark.parametrize("measure", ["level", "cumulative"])
def test_forecaster_refits_once_per_step(measure: str) -> None:
    times, values = _hourly_series(seed=2)
    forecaster = KeyResultForecaster()
    spec = _spec(measure)
    evaluations = START + 20 * DAY + np.arange(0, 3 * DAY, 300.0)
    currents = []
    for now in evaluations:
        visible = times <= now
        result = forecaster.forecast("kr", spec, times[visible], values[visible], now)
        currents.append(result.current)
    # Three days of 5-minute cycles cross three daily step ends.
    assert forecaster.fit_count == 3
    # Between fits the current value still follows every new sample.
    assert len(set(currents)) > 3 * 24


def test_forecaster_cumulative_booked_moves_without_refit() -> None:
    times, values = _hourly_series(seed=3)
    forecaster = KeyResultForecaster()
    spec = _spec("cumulative")
    now = START + 30 * DAY + HOUR
    first = forecaster.forecast(
        "kr", spec, times[times <= now], values[times <= now], now
    )
    later = now + 10 * HOUR
    second = forecaster.forecast(
        "kr", spec, times[times <= later], values[times <= later], later
    )
    assert forecaster.fit_count == 1
    booked = values[(times >= START) & (times <= later)].sum()
    assert second.current == pytest.approx(booked)
    assert second.current > first.current
    # What was booked in those ten hours narrows the interval.
    assert second.upper_80 - second.lower_80 < first.upper_80 - first.lower_80


def test_forecaster_refits_when_period_moves() -> None:
    times, values = _hourly_series(seed=4)
    forecaster = KeyResultForecaster()
    now = START + 10 * DAY + HOUR
    forecaster.forecast("kr", _spec("level"), times, values, now)
    forecaster.forecast("kr", _spec("level", target=600.0), times, values, now)
    assert forecaster.fit_count == 1
    moved = _spec("level", start=START + 7 * DAY, due=DUE + 7 * DAY)
    result = forecaster.forecast("kr", moved, times, values, now)
    assert forecaster.fit_count == 2
    assert result == forecast_key_result(moved, times, values, now)


def test_forecaster_refits_when_old_step_changes() -> None:
    times, values = _hourly_series(seed=5)
    forecaster = KeyResultForecaster()
    now = START + 10 * DAY + HOUR
    forecaster.forecast("kr", _spec("level"), times, values, now)
    corrected = values.copy()
    corrected[times < START] += 50.0
    result = forecaster.forecast("kr", _spec("level"), times, corrected, now)
    assert forecaster.fit_count == 2
    assert result == forecast_key_result(_spec("level"), times, corrected, now)


def test_forecaster_redraws_when_pool_gains_errors() -> None:
    times, values = _hourly_series(seed=6, days_before=200)
    pool = ErrorPool(max_origins_per_update=1, max_backfill_origins=2)
    forecaster = KeyResultForecaster(error_pool=pool)
    now = START + 10 * DAY + HOUR
    forecaster.forecast("kr", _spec("level"), times, values, now)
    assert pool.update(times, values, now, key="kpi") == 1
    result = forecaster.forecast("kr", _spec("level"), times, values, now)
    assert forecaster.fit_count == 1
    assert forecaster.draw_count == 2
    assert result == forecast_key_result(
        _spec("level"), times, values, now, error_pool=pool
    )
    forecaster.forecast("kr", _spec("level"), times, values, now)
    assert forecaster.draw_count == 2


def test_forecaster_keys_are_cached_apart() -> None:
    times, values = _hourly_series(seed=7)
    other_times, other_values = _hourly_series(seed=8)
    forecaster = KeyResultForecaster()
    now = START + 10 * DAY + HOUR
    for _ in range(3):
        first = forecaster.forecast("a", _spec("level"), times, values, now)
        second = forecaster.forecast(
            "b", _spec("level"), other_times, other_values, now
        )
    assert forecaster.fit_count == 2
    assert first.forecast != second.forecast
    assert len(forecaster) == 2


def test_forecaster_retain_drops_other_keys() -> None:
    times, values = _hourly_series(seed=9)
    forecaster = KeyResultForecaster()
    now = START + 10 * DAY + HOUR
    for key in ("a", "b", "c"):
        forecaster.forecast(key, _spec("level"), times, values, now)
    forecaster.retain(["b"])
    assert len(forecaster) == 1
    forecaster.forecast("a", _spec("level"), times, values, now)
    forecaster.forecast("b", _spec("level"), times, values, now)
    assert forecaster.fit_count == 4


@pytest.mark.parametrize(
    ("count", "now", "status"),
    [(2, START + DAY, "insufficient_data"), (2000, DUE + DAY, "missed")],
    ids=["short-history", "after-due"],
)
def test_forecaster_caches_nothing_without_fit(
    count: int, now: float, status: str
) -> None:
    times, values = _hourly_series(seed=10, days_before=0, days_after=100)
    forecaster = KeyResultForecaster()
    spec = _spec("level", target=1e6)
    result = forecaster.forecast("kr", spec, times[:count], values[:count], now)
    assert result.status == status
    assert len(forecaster) == 0
