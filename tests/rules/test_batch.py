from __future__ import annotations

import numpy as np
import pytest

from monitor.dense import DenseBlock
from monitor.series import SeriesKey, make_labels
from rules.batch import BatchPlan, compile_shape
from rules.expr import SeriesWindow, evaluate, parse

STEP = 60.0
RNG = np.random.default_rng(11)


def make_block(
    n_series: int = 40, n_columns: int = 300, capacity: int = 256
) -> DenseBlock:
    block = DenseBlock(capacity)
    keys = [
        SeriesKey(f"k{i % 10}", make_labels({"shard": str(i // 10)}))
        for i in range(n_series)
    ]
    for column in range(n_columns):
        values = (
            100
            + np.cumsum(RNG.normal(0, 1, n_series))
            + column * RNG.normal(0, 0.1, n_series)
        )
        if column % 37 == 5:
            values[3] = np.nan
        block.append(column * STEP, keys, values)
    return block


class BlockContext:
    """The tree evaluator's view of the same block, for comparison."""

    def __init__(self, block: DenseBlock, now: float) -> None:
        self.now = now
        self.block = block

    def select(self, kpi: str, matchers: object) -> list[SeriesWindow]:
        windows = []
        for row, key in enumerate(self.block.keys):
            if key.kpi == kpi and all(m.matches(key.labels) for m in matchers):  # type: ignore[attr-defined]
                times, values = self.block.row_series(row)
                windows.append(
                    SeriesWindow(
                        kpi=kpi, labels=key.labels, timestamps=times, values=values
                    )
                )
        return windows

    def key_result(self, name: str) -> None:
        return None

    def anomaly_score(self, kpi: str, labels: object) -> float:
        return float("nan")


EXPRESSIONS = [
    'kpi("k1") > 100',
    'last(kpi("k2", shard="1")) <= 101',
    'slope(kpi("k3"), 1h) > 0',
    'slope(kpi("k4"), 2h) < 0.001',
    'predict_linear(kpi("k5"), 1h, 1d) >= 100',
    'kpi("k6", shard="0") / on() kpi("k7", shard="2") > 1',
    'kpi("k6") / kpi("k7") > 1',
    'kpi("k8", shard=~"1|3") != 100',
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_batch_matches_tree_evaluator(text: str) -> None:
    block = make_block()
    now = 299 * STEP
    plan = BatchPlan({"rule": parse(text)}, block)
    result = plan.evaluate(now)
    expected = evaluate(parse(text), BlockContext(block, now))
    got = sorted(result.holding.get("rule", []))
    want = sorted((element.labels, element.value) for element in expected)
    assert [labels for labels, _ in got] == [labels for labels, _ in want]
    assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-6, atol=1e-9)


def test_batch_reports_rules_it_cannot_compile() -> None:
    plan = BatchPlan(
        {"a": parse('avg_over(kpi("k1"), 1h) > 3'), "b": parse('kpi("k1") > 3')},
        make_block(),
    )
    assert plan.not_compiled == ["a"]
    assert plan.compiled == frozenset({"b"})


def test_batch_resolves_new_series() -> None:
    block = make_block(n_series=10, n_columns=5)
    plan = BatchPlan({"r": parse('kpi("new") > 0')}, block)
    assert plan.evaluate(4 * STEP).holding == {}
    block.append(5 * STEP, [SeriesKey("new")], np.array([1.0]))
    assert plan.evaluate(5 * STEP).holding == {"r": [((), 1.0)]}


def test_batch_nan_never_holds() -> None:
    block = DenseBlock(8)
    block.append(0.0, [SeriesKey("a")], np.array([np.nan]))
    plan = BatchPlan({"ne": parse('kpi("a") != 1'), "lt": parse('kpi("a") < 1')}, block)
    assert plan.evaluate(0.0).holding == {}


def test_dense_block_ring_keeps_newest_columns() -> None:
    block = DenseBlock(4)
    for column in range(10):
        block.append(float(column), [SeriesKey("a")], np.array([float(column)]))
    times, values = block.row_series(0)
    assert times.tolist() == [6.0, 7.0, 8.0, 9.0]
    assert values.tolist() == [6.0, 7.0, 8.0, 9.0]


def test_dense_block_fit_of_exact_line() -> None:
    block = DenseBlock(100)
    for column in range(100):
        block.append(
            column * 60.0,
            [SeriesKey("a"), SeriesKey("b")],
            np.array([2.0 * column, 5.0]),
        )
    fit = block.linear_fit(np.array([0, 1]), 99 * 60.0, 3600.0)
    assert fit.slope == pytest.approx([2.0 / 60.0, 0.0])
    assert fit.value_at_now == pytest.approx([198.0, 5.0])


@pytest.mark.parametrize(
    "text",
    [
        'avg_over(kpi("a"), 1h) > 1',
        'kpi("a") > kpi("b")',
        '1 < kpi("a")',
        'kpi("a") + 1 > 2',
    ],
    ids=["avg-over", "vector-rhs", "number-lhs", "arithmetic"],
)
def test_compile_shape_rejects_other_shapes(text: str) -> None:
    assert compile_shape(parse(text)) is None


def test_batch_reports_stale_series_instead_of_holding() -> None:
    block = DenseBlock(16)
    a, b = SeriesKey("k", (("s", "a"),)), SeriesKey("k", (("s", "b"),))
    block.append(0.0, [a, b], np.array([5.0, 5.0]))
    for column in range(1, 5):
        block.append(60.0 * column, [a], np.array([5.0]))
    plan = BatchPlan({"r": parse('kpi("k") > 1')}, block, stale_after={"k": 120.0})
    result = plan.evaluate(240.0)
    assert result.holding == {"r": [((("s", "a"),), 5.0)]}
    assert result.stale == {"r": {(("s", "b"),)}}


def test_dense_block_last_finite_looks_back_past_gaps() -> None:
    block = DenseBlock(8)
    a, b = SeriesKey("a"), SeriesKey("b")
    block.append(0.0, [a, b], np.array([1.0, 2.0]))
    block.append(60.0, [a], np.array([3.0]))
    values, times = block.last_finite(np.array([0, 1]), 60.0)
    assert values.tolist() == [3.0, 2.0]
    assert times.tolist() == [60.0, 0.0]
