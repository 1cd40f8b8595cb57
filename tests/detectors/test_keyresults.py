"""Tests of the key result forecast on seeded synthetic series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.keyresults import (
    STATUSES,
    ErrorPool,
    KeyResultSpec,
    forecast_key_result,
)
from detectors.keyresults._forecast import (
    _block_weights,
    _remaining_weights,
    draw_paths,
    step_grid,
)

DAY = 86400.0
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DUE = START + 91 * DAY


def _daily_series(
    *, slope: float, noise: float, days_before: int, days_after: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = np.arange(-days_before, days_after)
    values = 100.0 + slope * days + rng.normal(0.0, noise, days.size)
    return START + days * DAY + 12 * 3600.0, values


def _spec(**changes: object) -> KeyResultSpec:
    fields: dict[str, object] = {
        "measure": "level",
        "direction": "increase",
        "baseline": 100.0,
        "target": 130.0,
        "start": START,
        "due": DUE,
    }
    fields.update(changes)
    return KeyResultSpec(**fields)  # type: ignore[arg-type]


def test_forecast_clear_on_track_high_probability() -> None:
    times, values = _daily_series(
        slope=1.0, noise=1.0, days_before=60, days_after=30, seed=1
    )
    result = forecast_key_result(_spec(target=150.0), times, values, START + 30 * DAY)
    assert result.attainment_probability > 0.9
    assert result.status == "on_track"
    assert result.lower_80 < result.forecast < result.upper_80
    assert result.reason.endswith("with built-in M4 errors.")


def test_forecast_clear_miss_low_probability() -> None:
    times, values = _daily_series(
        slope=0.0, noise=1.0, days_before=60, days_after=30, seed=2
    )
    result = forecast_key_result(_spec(target=150.0), times, values, START + 30 * DAY)
    assert result.attainment_probability < 0.1
    assert result.status == "off_track"
    assert result.shortfall > 40.0


def test_forecast_decrease_direction_mirrors_increase() -> None:
    times, values = _daily_series(
        slope=-1.0, noise=1.0, days_before=60, days_after=30, seed=3
    )
    spec = _spec(direction="decrease", target=60.0, baseline=100.0)
    result = forecast_key_result(spec, times, values, START + 30 * DAY)
    assert result.attainment_probability > 0.9
    assert result.shortfall < 0.0


def test_forecast_cumulative_interval_narrows_over_period() -> None:
    times, values = _daily_series(
        slope=0.0, noise=5.0, days_before=60, days_after=91, seed=4
    )
    spec = _spec(measure="cumulative", baseline=0.0, target=9000.0)
    widths = []
    for day in (10, 40, 70, 85):
        result = forecast_key_result(spec, times, values, START + day * DAY)
        widths.append(result.upper_80 - result.lower_80)
    assert all(
        later < earlier for earlier, later in zip(widths, widths[1:], strict=False)
    )


def test_forecast_cumulative_current_is_booked_sum() -> None:
    times, values = _daily_series(
        slope=0.0, noise=1.0, days_before=30, days_after=91, seed=5
    )
    now = START + 20 * DAY
    spec = _spec(measure="cumulative", baseline=0.0, target=9000.0)
    result = forecast_key_result(spec, times, values, now)
    booked = values[(times >= START) & (times <= now)].sum()
    assert result.current == pytest.approx(booked)
    assert result.lower_95 > booked


def test_forecast_level_shift_triggers_refit() -> None:
    rng = np.random.default_rng(6)
    days = np.arange(-80, 30)
    values = np.where(days < 10, 100.0, 140.0) + rng.normal(0.0, 1.0, days.size)
    times = START + days * DAY
    result = forecast_key_result(_spec(), times, values, START + 30 * DAY)
    assert "level shift" in result.reason
    assert result.forecast == pytest.approx(140.0, abs=3.0)
    unshifted = forecast_key_result(
        _spec(), times, values, START + 30 * DAY, detect_shifts=False
    )
    assert "level shift" not in unshifted.reason


def test_forecast_weekday_season_detected() -> None:
    rng = np.random.default_rng(7)
    days = np.arange(-56, 30)
    weekday = np.array([1.3, 1.2, 1.1, 1.0, 1.0, 0.7, 0.7])
    factors = weekday[np.mod(np.floor(START / DAY).astype(int) + days, 7)]
    values = 100.0 * factors * rng.normal(1.0, 0.02, days.size)
    result = forecast_key_result(_spec(), START + days * DAY, values, START + 30 * DAY)
    assert "7-step season" in result.reason


def test_forecast_no_season_on_plain_noise() -> None:
    times, values = _daily_series(
        slope=0.0, noise=3.0, days_before=56, days_after=30, seed=8
    )
    result = forecast_key_result(_spec(), times, values, START + 30 * DAY)
    assert "season" not in result.reason


def test_forecast_coverage_on_synthetic_noise() -> None:
    """Intervals built from a pool of the same kind of series cover as nominal."""
    pool = ErrorPool(max_origins_per_update=8)
    rng = np.random.default_rng(9)
    for index in range(40):
        days = np.arange(-400, 0)
        walk = 100.0 + np.cumsum(rng.normal(0.0, 1.0, days.size))
        pool.update(START + days * DAY, walk, START, key=f"series{index}")
    assert pool.error_count("day", "160+", 5) >= 100

    inside_80 = 0
    inside_95 = 0
    trials = 200
    for _ in range(trials):
        days = np.arange(-200, 91)
        walk = 100.0 + np.cumsum(rng.normal(0.0, 1.0, days.size))
        history = days < 30
        result = forecast_key_result(
            _spec(),
            START + days[history] * DAY,
            walk[history],
            START + 30 * DAY,
            error_pool=pool,
        )
        assert "pooled errors of this installation" in result.reason
        outcome = walk[-1]
        inside_80 += result.lower_80 <= outcome <= result.upper_80
        inside_95 += result.lower_95 <= outcome <= result.upper_95
    assert inside_80 / trials == pytest.approx(0.8, abs=0.08)
    assert inside_95 / trials == pytest.approx(0.95, abs=0.05)


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "insufficient_data"), (1, "insufficient_data"), (3, "insufficient_data")],
    ids=["empty", "one-point", "three-points"],
)
def test_forecast_short_history_insufficient(count: int, expected: str) -> None:
    times = START + np.arange(count) * DAY
    values = np.full(count, 100.0)
    result = forecast_key_result(_spec(), times, values, START + 10 * DAY)
    assert result.status == expected
    assert math.isnan(result.attainment_probability)
    assert math.isnan(result.shortfall)
    assert result.reason.startswith(f"The series has {count} daily steps")


def test_forecast_five_points_uses_flat_model() -> None:
    times = START + np.arange(5) * DAY
    values = np.array([100.0, 102.0, 101.0, 103.0, 102.0])
    result = forecast_key_result(_spec(), times, values, START + 5 * DAY)
    assert result.status in STATUSES
    assert "simple exponential smoothing" in result.reason
    assert 0.0 <= result.attainment_probability <= 1.0


@pytest.mark.parametrize(
    ("target", "expected"),
    [(130.0, "achieved"), (170.0, "missed")],
    ids=["met", "not-met"],
)
def test_forecast_after_due_scores_outcome(target: float, expected: str) -> None:
    times, values = _daily_series(
        slope=0.5, noise=0.1, days_before=10, days_after=91, seed=10
    )
    result = forecast_key_result(_spec(target=target), times, values, DUE + DAY)
    assert result.status == expected
    assert result.forecast == pytest.approx(values[-1])


def test_forecast_progress_and_glide_path() -> None:
    times, values = _daily_series(
        slope=0.0, noise=0.0, days_before=30, days_after=45, seed=11
    )
    values[-1] = 115.0
    now = START + 45.5 * DAY
    result = forecast_key_result(_spec(), times, values, now)
    assert result.progress == pytest.approx(0.5)
    assert result.expected_progress == pytest.approx(45.5 / 91)
    assert result.required_run_rate == pytest.approx(15.0 / 45.5)


def test_forecast_target_equals_baseline_defined() -> None:
    times, values = _daily_series(
        slope=0.0, noise=1.0, days_before=30, days_after=10, seed=12
    )
    result = forecast_key_result(_spec(target=100.0), times, values, START + 10 * DAY)
    assert math.isnan(result.progress)
    assert result.status in STATUSES


def test_forecast_decide_by_before_due_when_short() -> None:
    times, values = _daily_series(
        slope=0.5, noise=0.5, days_before=60, days_after=10, seed=13
    )
    now = START + 10 * DAY
    result = forecast_key_result(_spec(target=140.0), times, values, now)
    assert result.decide_by is not None
    assert now <= result.decide_by < DUE


def test_forecast_seed_makes_result_repeatable() -> None:
    times, values = _daily_series(
        slope=0.3, noise=3.0, days_before=60, days_after=10, seed=14
    )
    first = forecast_key_result(_spec(), times, values, START + 10 * DAY, seed=5)
    second = forecast_key_result(_spec(), times, values, START + 10 * DAY, seed=5)
    assert first == second


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("measure", "total", "measure 'total' is invalid"),
        ("direction", "up", "direction 'up' is invalid"),
        ("target", math.nan, "target nan is not a finite number"),
        ("due", START - 1.0, "is not after its start"),
    ],
    ids=["measure", "direction", "nan-target", "due-before-start"],
)
def test_spec_invalid_field_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**{field: value})


def test_forecast_random_walk_no_level_shift() -> None:
    rng = np.random.default_rng(15)
    days = np.arange(-150, 10)
    walk = 100.0 + np.cumsum(rng.normal(0.0, 1.0, days.size))
    result = forecast_key_result(_spec(), START + days * DAY, walk, START + 10 * DAY)
    assert "level shift" not in result.reason


def test_forecast_hourly_key_result_hour_season() -> None:
    rng = np.random.default_rng(16)
    hours = np.arange(-24 * 10, 24 * 2)
    daily_cycle = 1.0 + 0.5 * np.sin(2 * np.pi * np.mod(hours, 24) / 24)
    values = 100.0 * daily_cycle * rng.normal(1.0, 0.02, hours.size)
    spec = _spec(due=START + 7 * DAY, target=100.0)
    result = forecast_key_result(spec, START + hours * 3600.0, values, START + 2 * DAY)
    assert "24-step season" in result.reason
    assert result.status in STATUSES


def test_forecast_weekly_samples_use_weekly_steps() -> None:
    rng = np.random.default_rng(17)
    weeks = np.arange(-30, 4)
    values = 100.0 + rng.normal(0.0, 1.0, weeks.size)
    times = START + weeks * 7 * DAY
    result = forecast_key_result(_spec(), times, values, START + 4 * 7 * DAY)
    assert "on 34 steps" in result.reason


def test_forecast_gaps_and_nan_samples_tolerated() -> None:
    times, values = _daily_series(
        slope=1.0, noise=1.0, days_before=60, days_after=30, seed=18
    )
    values[::3] = np.nan
    keep = np.ones(times.size, dtype=bool)
    keep[20:35] = False
    result = forecast_key_result(
        _spec(target=150.0), times[keep], values[keep], START + 30 * DAY
    )
    # The clean series gives about 0.92; sparser data may widen the spread.
    assert result.status == "on_track"
    assert result.attainment_probability > 0.7
    assert "level shift" not in result.reason


def _cost_per_click(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a daily KPI near 0.25 whose noise reaches below 0.05."""
    rng = np.random.default_rng(seed)
    days = np.arange(-60, 10)
    values = np.abs(0.25 + rng.normal(0.0, 0.08, days.size))
    return START + days * DAY + 12 * 3600.0, values


@pytest.mark.parametrize("measure", ["level", "cumulative"])
def test_forecast_non_negative_history_band(measure: str) -> None:
    times, values = _cost_per_click(seed=19)
    now = START + 10 * DAY
    spec = _spec(measure=measure, direction="decrease", baseline=0.25, target=0.2)
    result = forecast_key_result(spec, times, values, now)
    booked = values[(times >= START) & (times <= now)].sum()
    floor = 0.0 if measure == "level" else booked
    assert result.lower_95 >= floor
    assert result.lower_80 >= floor
    # The same series shifted below zero once gets the unclipped band.
    shifted = values.copy()
    shifted[0] = -0.01
    unclipped = forecast_key_result(spec, times, shifted, now)
    assert unclipped.lower_95 < floor


@pytest.mark.parametrize(
    ("measure", "direction", "target"),
    [
        ("level", "decrease", 0.2),
        ("level", "increase", 0.3),
        ("level", "decrease", 0.0),
        ("cumulative", "decrease", 20.0),
        ("cumulative", "increase", 23.0),
    ],
    ids=["level-below", "level-above", "level-zero", "sum-below", "sum-above"],
)
def test_forecast_non_negative_probability_unchanged(
    measure: str, direction: str, target: float
) -> None:
    times, values = _cost_per_click(seed=20)
    now = START + 10 * DAY
    spec = _spec(measure=measure, direction=direction, baseline=0.25, target=target)
    paths = draw_paths(spec, step_grid(spec, times, values, now))
    assert not isinstance(paths, str)
    booked = values[(times >= START) & (times <= now)].sum()
    if measure == "level":
        raw = paths.point[-1] + paths.model.scale * paths.errors[:, 0]
        assert np.any(raw < 0.0)
    else:
        weights = _remaining_weights(spec, paths.path_ends, DAY, now, times, values)
        block_weights = _block_weights(weights, paths.horizons.size)
        errors = paths.model.scale * (paths.errors @ block_weights)
        raw = booked + paths.point @ weights + errors
    if direction == "increase":
        expected = float(np.mean(raw >= target))
    else:
        expected = float(np.mean(raw <= target))
    result = forecast_key_result(spec, times, values, now)
    assert result.attainment_probability == pytest.approx(expected)
