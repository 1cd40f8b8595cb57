"""Tests of the key result evaluator's reuse of fitted forecasts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from detectors.keyresults import KeyResultSpec, forecast_key_result
from monitor.config.model import KeyResultConfig
from monitor.keyresults import KeyResultEvaluator
from monitor.series import Sample, SeriesKey
from monitor.windows import WindowStore

HOUR = 3600.0
DAY = 86400.0
START = datetime(2024, 1, 1, tzinfo=UTC)
DUE = datetime(2024, 4, 1, tzinfo=UTC)
KEY = SeriesKey("orders", (("region", "eu"),))


def _config(name: str, measure: str, **changes: object) -> KeyResultConfig:
    fields: dict[str, object] = {
        "name": name,
        "kpi": "orders",
        "objective": "grow",
        "owner": "sales",
        "measure": measure,
        "direction": "increase",
        "baseline": 100.0,
        "target": 110.0 if measure == "level" else 100.0 * 24 * 91,
        "start": START,
        "due": DUE,
    }
    fields.update(changes)
    return KeyResultConfig(**fields)  # type: ignore[arg-type]


def _hourly_samples(first: float, last: float, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    hours = np.arange(first, last, HOUR)
    values = 100.0 + np.cumsum(rng.normal(0.0, 0.5, hours.size))
    return [Sample(KEY, float(t), float(v)) for t, v in zip(hours, values, strict=True)]


def _run_cycles(
    evaluator: KeyResultEvaluator,
    windows: WindowStore,
    samples: list[Sample],
    cycle_times: np.ndarray,
) -> None:
    """Evaluate at each cycle time after adding the samples that have arrived."""
    added = 0
    for now in cycle_times:
        fresh = [sample for sample in samples[added:] if sample.timestamp <= now]
        windows.add_samples(fresh)
        added += len(fresh)
        evaluator.evaluate(float(now))


def test_evaluator_refits_once_per_day() -> None:
    start = START.timestamp()
    windows = WindowStore(window_seconds=200 * DAY)
    samples = _hourly_samples(start - 60 * DAY, start + 4 * DAY, seed=1)
    configs = (_config("level_kr", "level"), _config("sum_kr", "cumulative"))
    evaluator = KeyResultEvaluator(configs, windows)
    # Five-minute cycles from 01:00 on day 1 until 01:00 on day 3 cross two
    # daily step ends, and samples arrive as their hour passes.
    cycle_times = start + DAY + HOUR + np.arange(0, 2 * DAY, 300.0)
    _run_cycles(evaluator, windows, samples, cycle_times)
    assert evaluator.forecaster.fit_count == 2 * 3
    # The pool fills over the first cycles, which redraws the paths without
    # a refit.
    assert evaluator.forecaster.draw_count > evaluator.forecaster.fit_count

    now = float(cycle_times[-1])
    statuses = evaluator.evaluate(now)
    ((_, times, values),) = windows.snapshot("orders")
    for name in ("level_kr", "sum_kr"):
        status = statuses[name]
        spec = KeyResultSpec(
            measure=status.config.measure,
            direction="increase",
            baseline=100.0,
            target=status.config.target,
            start=start,
            due=DUE.timestamp(),
        )
        expected = forecast_key_result(
            spec, times, values, now, error_pool=evaluator.error_pool
        )
        assert status.forecast == expected


def test_evaluator_period_change_refits() -> None:
    start = START.timestamp()
    windows = WindowStore(window_seconds=200 * DAY)
    # Samples after an evaluation time are ignored by that evaluation.
    windows.add_samples(_hourly_samples(start - 60 * DAY, start + 8 * DAY, seed=2))
    evaluator = KeyResultEvaluator(
        (_config("weekly_kr", "level", period="week"),), windows
    )
    # 2024-01-07 is a Sunday, so the week period rolls over at midnight. A
    # week is modelled in hourly steps, so both Sunday cycles lie in one step.
    sunday_night = datetime(2024, 1, 7, 23, 30, tzinfo=UTC).timestamp()
    evaluator.evaluate(sunday_night)
    evaluator.evaluate(sunday_night + 1200.0)
    assert evaluator.forecaster.fit_count == 1
    monday = evaluator.evaluate(sunday_night + 1800.0)
    assert evaluator.forecaster.fit_count == 2
    assert monday["weekly_kr"].start == datetime(2024, 1, 8, tzinfo=UTC)


def test_evaluator_reload_drops_removed_key_results() -> None:
    start = START.timestamp()
    windows = WindowStore(window_seconds=200 * DAY)
    windows.add_samples(_hourly_samples(start - 60 * DAY, start, seed=3))
    configs = (_config("kept", "level"), _config("removed", "level"))
    evaluator = KeyResultEvaluator(configs, windows)
    evaluator.evaluate(start)
    assert len(evaluator.forecaster) == 2
    evaluator.key_results = configs[:1]
    evaluator.evaluate(start + 60.0)
    assert len(evaluator.forecaster) == 1
    assert evaluator.forecaster.fit_count == 2


@pytest.mark.parametrize(
    ("labels", "expected_fits"),
    [({"region": "eu"}, 1), ({"region": "us"}, 2)],
    ids=["same-series", "other-series"],
)
def test_evaluator_series_change_refits(
    labels: dict[str, str], expected_fits: int
) -> None:
    start = START.timestamp()
    windows = WindowStore(window_seconds=200 * DAY)
    windows.add_samples(_hourly_samples(start - 60 * DAY, start, seed=4))
    other = SeriesKey("orders", (("region", "us"),))
    windows.add_samples(
        Sample(other, sample.timestamp, 2 * sample.value)
        for sample in _hourly_samples(start - 60 * DAY, start, seed=5)
    )
    evaluator = KeyResultEvaluator(
        (_config("kr", "level", labels={"region": "eu"}),), windows
    )
    evaluator.evaluate(start)
    evaluator.key_results = (_config("kr", "level", labels=labels),)
    status = evaluator.evaluate(start + 60.0)["kr"]
    assert evaluator.forecaster.fit_count == expected_fits
    assert status.series == SeriesKey("orders", (("region", labels["region"]),))


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (
            {"region": "mars"},
            'No series of the KPI orders has the labels region="mars"',
        ),
        ({}, "The KPI orders has no samples in the window yet."),
    ],
    ids=["no-match", "no-samples"],
)
def test_evaluator_names_missing_series(labels: dict[str, str], reason: str) -> None:
    windows = WindowStore(window_seconds=120 * DAY)
    if labels:
        windows.add_samples(
            _hourly_samples(START.timestamp(), START.timestamp() + DAY, 1)
        )
    config = _config("orders_level", "level", labels=labels)
    evaluator = KeyResultEvaluator((config,), windows)

    status = evaluator.evaluate(START.timestamp() + DAY)["orders_level"]

    assert status.status == "insufficient_data"
    assert status.forecast.reason.startswith(reason)


def test_evaluator_warns_once_for_several_series(
    caplog: pytest.LogCaptureFixture,
) -> None:
    windows = WindowStore(window_seconds=120 * DAY)
    for region in ("eu", "us"):
        key = SeriesKey("orders", (("region", region),))
        windows.add_samples([Sample(key, START.timestamp() + HOUR, 100.0)])
    evaluator = KeyResultEvaluator((_config("orders_level", "level"),), windows)

    for cycle in range(3):
        evaluator.evaluate(START.timestamp() + 2 * HOUR + cycle * 60)

    warnings = [r for r in caplog.records if "matches 2 series" in r.getMessage()]
    assert len(warnings) == 1
