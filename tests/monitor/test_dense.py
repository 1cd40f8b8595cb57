"""Tests of DenseBlock: column growth, ring wrap and the values it returns."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.dense import INITIAL_COLUMNS, DenseBlock
from monitor.series import SeriesKey

KEYS = [SeriesKey("orders", (("region", region),)) for region in ("eu", "us")]


def fill(block: DenseBlock, polls: int) -> np.ndarray:
    """Append ``polls`` columns of two rows; return the values, one row per key."""
    values = np.vstack([np.arange(polls) * 1.0, 1000.0 - np.arange(polls)])
    for poll in range(polls):
        block.append(60.0 * poll, KEYS, values[:, poll])
    return values


def test_dense_block_allocates_columns_as_polls_arrive() -> None:
    block = DenseBlock(capacity=777_600)

    fill(block, 3)

    assert block.width == INITIAL_COLUMNS
    assert block.values.nbytes < 64 * INITIAL_COLUMNS * 8 + 1


@pytest.mark.parametrize(
    ("polls", "width"),
    [
        (INITIAL_COLUMNS + 1, 2 * INITIAL_COLUMNS),
        (700, 1000),
        (1000, 1000),
        (1500, 1000),
    ],
    ids=["widened", "capped", "full", "wrapped"],
)
def test_dense_block_keeps_newest_columns(polls: int, width: int) -> None:
    block = DenseBlock(capacity=1000)

    values = fill(block, polls)

    retained = min(polls, 1000)
    assert block.width == width
    assert block.size == retained
    times, row = block.row_series(1)
    np.testing.assert_array_equal(row, values[1, -retained:])
    np.testing.assert_array_equal(times, 60.0 * np.arange(polls)[-retained:])
    assert block.newest_timestamp == 60.0 * (polls - 1)
    counted = np.isnan(block.values[:2]).sum(axis=1)
    np.testing.assert_array_equal(block.nan_counts[:2], counted)


def test_dense_block_fit_after_widening() -> None:
    block = DenseBlock(capacity=1000)
    fill(block, 600)
    now = 60.0 * 599

    fit = block.linear_fit(np.array([0, 1]), now, 3600.0)
    last, when = block.last_finite(np.array([0, 1]), now)

    np.testing.assert_allclose(fit.slope, [1 / 60, -1 / 60])
    np.testing.assert_allclose(fit.value_at_now, [599.0, 401.0])
    np.testing.assert_array_equal(last, [599.0, 401.0])
    np.testing.assert_array_equal(when, [now, now])


def test_dense_block_late_row_after_widening() -> None:
    block = DenseBlock(capacity=1000)
    fill(block, 300)
    late = SeriesKey("orders", (("region", "apac"),))

    block.append(60.0 * 300, [*KEYS, late], np.array([1.0, 2.0, 3.0]))

    times, values = block.row_series(block.row_of(late))
    assert times.tolist() == [18_000.0]
    assert values.tolist() == [3.0]
    assert block.nan_counts[block.row_of(late)] == block.width - 1


def test_dense_block_load_then_append_widens() -> None:
    block = DenseBlock(capacity=10_000)
    history = np.arange(300.0)[None, :].repeat(2, axis=0)
    block.load(60.0 * np.arange(300), KEYS, history)
    width = block.width

    fill_values = np.array([300.0, 300.0])
    for poll in range(300, 300 + width):
        block.append(60.0 * poll, KEYS, fill_values)

    assert block.width > width
    assert block.size == 300 + width
    times, _ = block.row_series(0)
    assert times[0] == 0.0
    assert times[-1] == 60.0 * (299 + width)
