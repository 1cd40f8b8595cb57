"""Tests of the pooled forecast errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.keyresults import ErrorPool
from detectors.keyresults._pool import (
    REFIT_BUCKET,
    _usable_steps,
    default_quantiles,
    history_bucket,
    horizon_bin,
)

DAY = 86400.0
WEEK = 7 * DAY
NOW = 1_704_067_200.0


def _weekly_walk(seed: int, length: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = NOW - WEEK * np.arange(length, 0, -1)
    return times, 100.0 + np.cumsum(rng.normal(0.0, 1.0, length))


def test_pool_update_ignores_samples_after_now() -> None:
    times, values = _weekly_walk(1)
    pool = ErrorPool(max_origins_per_update=8)
    fitted = pool.update(times, values, NOW, key="a")
    assert fitted == 8
    assert pool.error_count("week", "52-103", 13) > 0
    future_times = NOW + WEEK * np.arange(10)
    other = ErrorPool(max_origins_per_update=8)
    other.update(
        np.concatenate([times, future_times]),
        np.concatenate([values, np.full(10, 1e6)]),
        NOW,
        key="a",
    )
    assert other.to_dict()["errors"] == pool.to_dict()["errors"]


def test_pool_update_is_incremental() -> None:
    times, values = _weekly_walk(2)
    pool = ErrorPool(max_origins_per_update=2, max_backfill_origins=4)
    counts = [pool.update(times, values, NOW, key="a") for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    later = NOW + 4 * WEEK
    assert pool.update(times, values, later, key="a") == 1


def test_pool_round_trip_through_json() -> None:
    pool = ErrorPool(max_origins_per_update=8)
    for seed in range(3):
        times, values = _weekly_walk(seed)
        pool.update(times, values, NOW, key=f"s{seed}")
    restored = ErrorPool.from_dict(json.loads(json.dumps(pool.to_dict())))
    assert restored.to_dict() == pool.to_dict()
    # The restored pool resumes the backfill where the original stopped.
    assert restored.update(*_weekly_walk(0), NOW, key="s0") == 1
    assert restored.update(*_weekly_walk(0), NOW, key="s0") == 0


def test_pool_newer_schema_rejected() -> None:
    data = ErrorPool().to_dict()
    data["version"] = 99
    with pytest.raises(ValueError, match="schema version 99 is not supported"):
        ErrorPool.from_dict(data)


def test_pool_quantiles_fall_back_to_default() -> None:
    pool = ErrorPool()
    expected = default_quantiles("26-51", 3)
    assert np.array_equal(pool.quantiles("week", "26-51", 3), expected)


def test_pool_quantiles_follow_pooled_errors() -> None:
    pool = ErrorPool(max_origins_per_update=8)
    for seed in range(30):
        times, values = _weekly_walk(seed)
        pool.update(times, values, NOW, key=f"s{seed}")
    table = pool.quantiles("week", "104-159", 1)
    assert not np.array_equal(table, default_quantiles("104-159", 1))
    # One-step errors of a unit random walk are about 1.25 mean absolute
    # differences (1 / 0.8), so normal scores -1.25 and 1.25 lie about
    # 2.5 * 1.25 apart.
    assert table[16] - table[6] == pytest.approx(3.1, abs=0.5)


@pytest.mark.parametrize(
    ("horizon", "expected"),
    [(1, 1), (13, 13), (14, 14), (16, 14), (17, 15), (91, 21)],
    ids=["first", "last-exact", "first-binned", "bin-14-end", "bin-15", "quarter"],
)
def test_horizon_bin_boundaries(horizon: int, expected: int) -> None:
    assert horizon_bin(horizon) == expected


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(4, "4-8"), (8, "4-8"), (9, "9-25"), (104, "104-159"), (160, "160+")],
    ids=["4", "8", "9", "104", "160"],
)
def test_history_bucket_boundaries(steps: int, expected: str) -> None:
    assert history_bucket(steps) == expected


def test_pool_refit_errors_use_own_bucket() -> None:
    rng = np.random.default_rng(40)
    length = 200
    times = NOW - WEEK * np.arange(length, 0, -1)
    values = np.where(np.arange(length) < 150, 100.0, 160.0)
    values = values + rng.normal(0.0, 1.0, length)
    pool = ErrorPool(max_origins_per_update=8)
    pool.update(times, values, NOW, key="shifted")
    assert pool.error_count("week", REFIT_BUCKET, 1) > 0


@pytest.mark.parametrize(
    ("spacing_seconds", "expected"),
    [(60.0, (3600.0, DAY)), (2 * DAY, (DAY,)), (WEEK, (WEEK,)), (30 * DAY, (WEEK,))],
    ids=["minutes", "two-days", "weekly", "monthly"],
)
def test_pool_usable_steps_follow_spacing(
    spacing_seconds: float, expected: tuple[float, ...]
) -> None:
    assert _usable_steps(spacing_seconds) == expected


def test_pool_measures_log_origins_apart() -> None:
    times, values = _weekly_walk(41)
    pool = ErrorPool(max_origins_per_update=8)
    assert pool.update(times, values, NOW, key="a", measure="level") == 8
    assert pool.update(times, values, NOW, key="a", measure="cumulative") == 8


def test_pool_budget_spans_all_steps() -> None:
    """An hourly series feeds hourly and daily steps within one budget."""
    rng = np.random.default_rng(42)
    times = NOW - 3600.0 * np.arange(24 * 200, 0, -1)
    values = 100.0 + np.cumsum(rng.normal(0.0, 1.0, times.size))
    pool = ErrorPool(max_origins_per_update=1, max_backfill_origins=2)
    counts = [pool.update(times, values, NOW, key="a") for _ in range(7)]
    # The hourly step takes its latest origin and two backfilled ones first,
    # then the daily step the same, then nothing is left.
    assert counts == [1, 1, 1, 1, 1, 1, 0]
    steps = {name.split("/")[0] for name in pool.to_dict()["errors"]}
    assert steps == {"hour", "day"}
