"""Tests of expression evaluation over a small in-memory context."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from monitor.series import Labels, make_labels
from rules.expr import (
    Element,
    EvaluationContext,
    EvaluationError,
    Matcher,
    SeriesWindow,
    Vector,
    evaluate,
    matches_all,
    parse,
)

STEP_SECONDS = 600.0
SAMPLE_COUNT = 18
NOW = STEP_SECONDS * (SAMPLE_COUNT - 1)
TIMESTAMPS = np.arange(SAMPLE_COUNT) * STEP_SECONDS

EU = make_labels({"region": "eu"})
US = make_labels({"region": "us"})
APAC = make_labels({"region": "apac"})
EU_WEB = make_labels({"region": "eu", "channel": "web"})
US_WEB = make_labels({"region": "us", "channel": "web"})


@dataclass(frozen=True, kw_only=True)
class _KeyResult:
    progress: float
    expected_progress: float
    forecast: float
    attainment_probability: float


@dataclass
class _Context:
    """An evaluation context over a fixed list of windows."""

    now: float
    windows: list[SeriesWindow]
    key_results: dict[str, _KeyResult] = field(default_factory=dict)
    scores: dict[Labels, float] = field(default_factory=dict)
    selections: list[str] = field(default_factory=list)

    def select(self, kpi: str, matchers: Sequence[Matcher]) -> Sequence[SeriesWindow]:
        self.selections.append(kpi)
        return [
            window
            for window in self.windows
            if window.kpi == kpi and matches_all(tuple(matchers), window.labels)
        ]

    def key_result(self, name: str) -> _KeyResult | None:
        return self.key_results.get(name)

    def anomaly_score(self, kpi: str, labels: Labels) -> float:
        return self.scores[labels]


def _window(
    kpi: str,
    labels: Labels,
    values: Sequence[float] | np.ndarray,
    timestamps: Sequence[float] | np.ndarray = TIMESTAMPS,
) -> SeriesWindow:
    return SeriesWindow(
        kpi=kpi,
        labels=labels,
        timestamps=np.asarray(timestamps, dtype=float),
        values=np.asarray(values, dtype=float),
    )


def _context() -> _Context:
    ramp = np.arange(SAMPLE_COUNT, dtype=float)
    apac = ramp.copy()
    apac[-1] = np.nan
    apac[-3] = np.nan
    # One sample after the evaluation time, which every function must ignore.
    eu_timestamps = np.append(TIMESTAMPS, NOW + STEP_SECONDS)
    return _Context(
        now=NOW,
        windows=[
            _window("orders", EU, np.append(ramp, 1000.0), eu_timestamps),
            _window("orders", US, ramp * 2),
            _window("orders", APAC, apac),
            _window("capacity", EU_WEB, np.full(SAMPLE_COUNT, 4.0)),
            _window("capacity", US_WEB, np.zeros(SAMPLE_COUNT)),
            _window("signups", (), [5.0], [NOW - 7200.0]),
            _window("empty", EU, [], []),
            _window("future", (), [1.0], [NOW + 60.0]),
        ],
        key_results={
            "churn_q1": _KeyResult(
                progress=0.4,
                expected_progress=0.5,
                forecast=90.0,
                attainment_probability=0.3,
            )
        },
        scores={EU: 1.5, US: 4.5, APAC: 0.5},
    )


def _as_mapping(result: Vector | float) -> dict[Labels, float] | float:
    if isinstance(result, float):
        return result
    return {element.labels: element.value for element in result}


def _assert_same(actual: dict[Labels, float] | float, expected: object) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert set(actual) == set(expected)
        for labels, value in expected.items():
            if math.isnan(value):
                assert math.isnan(actual[labels]), labels
            else:
                assert actual[labels] == pytest.approx(value), labels
        return
    assert isinstance(actual, float)
    assert isinstance(expected, float)
    if math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == pytest.approx(expected)


NAN = float("nan")

SELECTION_CASES = [
    ('kpi("orders")', {EU: 17.0, US: 34.0, APAC: NAN}),
    ('kpi("orders", region="eu")', {EU: 17.0}),
    ('kpi("orders", region!="eu")', {US: 34.0, APAC: NAN}),
    ('kpi("orders", region=~"eu|us")', {EU: 17.0, US: 34.0}),
    ('kpi("orders", region=~"e")', {}),
    ('kpi("orders", region!~"a.*")', {EU: 17.0, US: 34.0}),
    ('kpi("orders", region="")', {}),
    ('kpi("unknown")', {}),
    ('kpi("empty")', {}),
    ('kpi("future")', {}),
    ('last(kpi("orders", region="us"))', {US: 34.0}),
]

ARITHMETIC_CASES = [
    ("1 + 2 * 3", 7.0),
    ("2 ^ 3 ^ 2", 512.0),
    ("-2 ^ 2", -4.0),
    ("2 ^ -1", 0.5),
    ("7 % 3", 1.0),
    ("-7 % 3", -1.0),
    ("1 / 0", NAN),
    ("0 / 0", NAN),
    ("5 % 0", NAN),
    ("2 ^ 10000", math.inf),
    ("-2 ^ 10001", -math.inf),
    ("2 ^ 2 ^ 2 ^ 2 ^ 2 ^ 2", math.inf),
    ("(-8) ^ 0.5", NAN),
    ("1e308 * 10", math.inf),
    ("5m + 1", 301.0),
    ("1h / 1m", 60.0),
    ("abs(-3)", 3.0),
    ("clamp(7, 0, 5)", 5.0),
    ("round(2.675, 2)", 2.67),
    ("round(2.5)", 2.0),
    ("round(1234, -2)", 1200.0),
    ('kpi("orders", region="eu") * 2', {EU: 34.0}),
    ('10 - kpi("orders", region=~"eu|us")', {EU: -7.0, US: -24.0}),
    ('-kpi("orders", region="us")', {US: -34.0}),
    ('kpi("orders", region="eu") / 0', {EU: NAN}),
    ('abs(kpi("orders", region="us") * -1)', {US: 34.0}),
    ('clamp(kpi("orders"), 20, 30)', {EU: 20.0, US: 30.0, APAC: NAN}),
    ('round(kpi("orders", region="eu") / 3, 1)', {EU: 5.7}),
]

COMPARISON_CASES = [
    ("1 < 2", 1.0),
    ("2 < 1", 0.0),
    ("1 == 1", 1.0),
    ("(0 / 0) == (0 / 0)", 0.0),
    ("(0 / 0) != 1", 0.0),
    ('kpi("orders") > 20', {US: 34.0}),
    ('kpi("orders") != 17', {US: 34.0}),
    ('kpi("orders") <= 17', {EU: 17.0}),
    ('20 < kpi("orders")', {US: 34.0}),
    ('kpi("orders") == 17', {EU: 17.0}),
    ('kpi("orders") >= 0', {EU: 17.0, US: 34.0}),
]

MATCHING_CASES = [
    ('kpi("orders") + kpi("orders")', {EU: 34.0, US: 68.0, APAC: NAN}),
    ('kpi("orders") / kpi("capacity")', {}),
    ('kpi("orders") / ignoring(channel) kpi("capacity")', {EU: 4.25, US: NAN}),
    ('kpi("orders") / on(region) kpi("capacity")', {EU: 4.25, US: NAN}),
    ('kpi("capacity", region="eu") * on() kpi("signups")', {(): 20.0}),
    (
        'kpi("capacity", region="us") - ignoring(region) kpi("capacity", region="eu")',
        {make_labels({"channel": "web"}): -4.0},
    ),
    ('kpi("orders") > on(region) kpi("capacity")', {EU: 17.0, US: 34.0}),
    ('kpi("capacity") < ignoring(channel) kpi("orders")', {EU_WEB: 4.0, US_WEB: 0.0}),
]

SET_CASES = [
    ("1 and 0", 0.0),
    ("1 and 2", 1.0),
    ("0 or 3", 1.0),
    ("0 or 0", 0.0),
    ("1 unless 0", 1.0),
    ("(0 / 0) or 0", 0.0),
    ("not 0", 1.0),
    ("not 5", 0.0),
    ("not (0 / 0)", 1.0),
    ('kpi("orders") > 10 and kpi("orders") < 20', {EU: 17.0}),
    ('kpi("orders") and kpi("capacity")', {}),
    ('kpi("orders") and ignoring(channel) kpi("capacity")', {EU: 17.0, US: 34.0}),
    ('kpi("orders") and on() kpi("signups")', {EU: 17.0, US: 34.0, APAC: NAN}),
    ('kpi("orders") and on() kpi("unknown")', {}),
    ('kpi("orders", region="eu") or kpi("orders")', {EU: 17.0, US: 34.0, APAC: NAN}),
    ('kpi("orders") > 20 or kpi("capacity")', {US: 34.0, EU_WEB: 4.0, US_WEB: 0.0}),
    ('kpi("orders") unless kpi("orders", region="us")', {EU: 17.0, APAC: NAN}),
    ('kpi("orders") unless on() kpi("signups")', {}),
    ('kpi("orders", region="eu") and 1', {EU: 17.0}),
    ('kpi("orders", region="eu") and 0', {}),
    ('kpi("orders", region="eu") unless 0', {EU: 17.0}),
    ('kpi("unknown") or 2', {(): 2.0}),
    ('kpi("orders", region="eu") or 2', {EU: 17.0}),
    ('2 and kpi("orders", region="eu")', {(): 2.0}),
    ('2 unless kpi("unknown")', {(): 2.0}),
    ('not kpi("unknown")', 1.0),
    ('not kpi("orders")', 0.0),
]

WINDOW_CASES = [
    ('avg_over(kpi("orders"), 1h)', {EU: 14.5, US: 29.0, APAC: 13.75}),
    ('min_over(kpi("orders"), 1h)', {EU: 12.0, US: 24.0, APAC: 12.0}),
    ('max_over(kpi("orders"), 1h)', {EU: 17.0, US: 34.0, APAC: 16.0}),
    ('sum_over(kpi("orders"), 30m)', {EU: 48.0, US: 96.0, APAC: 16.0}),
    ('count_over(kpi("orders"), 1h)', {EU: 6.0, US: 6.0, APAC: 4.0}),
    ('count_over(kpi("orders"), 10m)', {EU: 1.0, US: 1.0}),
    ('count_over(kpi("signups"), 1h)', {}),
    ('count_over(kpi("signups"), 3h)', {(): 1.0}),
    ('quantile_over(kpi("orders", region="eu"), 0.5, 1h)', {EU: 14.5}),
    ('quantile_over(kpi("orders", region="eu"), 0, 1h)', {EU: 12.0}),
    ('quantile_over(kpi("orders", region="eu"), q=1, window=1h)', {EU: 17.0}),
    ('quantile_over(kpi("orders", region="eu"), 1.5, 1h)', {EU: math.inf}),
    ('quantile_over(kpi("orders", region="eu"), -1, 1h)', {EU: -math.inf}),
    ('delta(kpi("orders"), 1h)', {EU: 5.0, US: 10.0, APAC: 4.0}),
    ('delta(kpi("signups"), 3h)', {}),
    (
        'pct_change(kpi("orders"), 1h)',
        {EU: 5.0 / 12.0, US: 5.0 / 12.0, APAC: 4.0 / 12.0},
    ),
    ('pct_change(kpi("capacity"), 1h)', {EU_WEB: 0.0, US_WEB: NAN}),
    ('pct_change(kpi("orders", region="eu"), 1w)', {EU: NAN}),
    ('rate(kpi("orders"), 1h)', {EU: 1 / 600, US: 2 / 600, APAC: 4 / 2400}),
    ('slope(kpi("orders"), 1h)', {EU: 1 / 600, US: 2 / 600, APAC: 1 / 600}),
    ('slope(kpi("capacity"), 3h)', {EU_WEB: 0.0, US_WEB: 0.0}),
    ('avg_over(kpi("empty"), 1h)', {}),
    ('avg_over(kpi("orders"), 1h) > 14', {EU: 14.5, US: 29.0}),
]

FUNCTION_CASES = [
    ('absent(kpi("unknown", region="eu", plan=~"pro"))', {EU: 1.0}),
    ('absent(kpi("unknown", region="eu", region="us"))', {(): 1.0}),
    ('absent(avg_over(kpi("empty", region="eu"), 1h))', {EU: 1.0}),
    ('absent(kpi("orders"))', {}),
    ('absent(kpi("orders") > 100)', {(): 1.0}),
    ('stale(kpi("signups"), 1h)', {(): 7200.0}),
    ('stale(kpi("signups"), 3h)', {}),
    ('stale(kpi("orders"), 1m)', {}),
    ('stale(kpi("future"), 1m)', {(): math.inf}),
    ('stale(kpi("empty"), 1m)', {EU: math.inf}),
    ('progress("churn_q1")', {(("key_result", "churn_q1"),): 0.4}),
    ('expected_progress("churn_q1")', {(("key_result", "churn_q1"),): 0.5}),
    ('forecast("churn_q1")', {(("key_result", "churn_q1"),): 90.0}),
    ('attainment("churn_q1") < 0.5', {(("key_result", "churn_q1"),): 0.3}),
    (
        'progress("churn_q1") < expected_progress("churn_q1")',
        {(("key_result", "churn_q1"),): 0.4},
    ),
    ('progress("unknown")', {}),
    ('anomaly_score(kpi("orders"))', {EU: 1.5, US: 4.5, APAC: 0.5}),
    ('anomaly_score(kpi("orders")) > 4', {US: 4.5}),
    ('anomaly_score(kpi("future"))', {}),
]


def _case_ids(cases: Sequence[tuple[str, object]]) -> list[str]:
    return [text for text, _ in cases]


@pytest.mark.parametrize(
    ("text", "expected"), SELECTION_CASES, ids=_case_ids(SELECTION_CASES)
)
def test_evaluate_selectors(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(
    ("text", "expected"), ARITHMETIC_CASES, ids=_case_ids(ARITHMETIC_CASES)
)
def test_evaluate_arithmetic(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(
    ("text", "expected"), COMPARISON_CASES, ids=_case_ids(COMPARISON_CASES)
)
def test_evaluate_comparisons(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(
    ("text", "expected"), MATCHING_CASES, ids=_case_ids(MATCHING_CASES)
)
def test_evaluate_vector_matching(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(("text", "expected"), SET_CASES, ids=_case_ids(SET_CASES))
def test_evaluate_set_operators(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(
    ("text", "expected"), WINDOW_CASES, ids=_case_ids(WINDOW_CASES)
)
def test_evaluate_window_functions(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


@pytest.mark.parametrize(
    ("text", "expected"), FUNCTION_CASES, ids=_case_ids(FUNCTION_CASES)
)
def test_evaluate_other_functions(text: str, expected: object) -> None:
    _assert_same(_as_mapping(evaluate(parse(text), _context())), expected)


def test_evaluate_comparison_keeps_order_and_values() -> None:
    result = evaluate(parse('kpi("orders") >= 0'), _context())

    assert result == (Element(EU, 17.0), Element(US, 34.0))


def test_evaluate_selects_repeated_selector_once() -> None:
    context = _context()

    evaluate(parse('kpi("orders") > 1 and delta(kpi("orders"), 1h) > 0'), context)

    assert context.selections == ["orders"]


def test_evaluate_duration_alone_gives_seconds() -> None:
    assert evaluate(parse("1h30m"), _context()) == 5400.0


def test_evaluate_slope_with_epoch_timestamps() -> None:
    start = 1_700_000_000.0
    timestamps = start + np.arange(100) * 60.0
    values = 3.0 + 0.25 * (timestamps - start)
    context = _Context(
        now=float(timestamps[-1]), windows=[_window("load", (), values, timestamps)]
    )

    result = evaluate(parse('slope(kpi("load"), 2h)'), context)

    assert isinstance(result, tuple)
    assert result[0].value == pytest.approx(0.25, rel=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'kpi("orders") + ignoring(region) kpi("orders")',
            r"The left side of '\+' has several series with the labels \{\} after "
            r"ignoring\(region\)",
        ),
        (
            'kpi("capacity", region="eu") + on(channel) kpi("capacity")',
            r'The right side of .* labels \{channel="web"\} after on\(channel\)',
        ),
        ("clamp(1, 5, 0)", "The lower bound 5 of clamp is above its upper bound 0"),
        (
            "round(1, 0.5)",
            "The ndigits argument of round must be a whole number, not 0.5",
        ),
        ("round(1, 1 / 0)", "must be a whole number, not nan"),
    ],
    ids=[
        "left-duplicates",
        "right-duplicates",
        "clamp-bounds",
        "round-fraction",
        "round-nan",
    ],
)
def test_evaluate_raises_evaluation_error(text: str, message: str) -> None:
    expr = parse(text)

    with pytest.raises(EvaluationError, match=message) as caught:
        evaluate(expr, _context())

    assert caught.value.offset == expr.offset


def test_series_window_rejects_descending_timestamps() -> None:
    with pytest.raises(ValueError, match="are not ascending"):
        _window("orders", EU, [1.0, 2.0], [10.0, 5.0])


def test_series_window_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="arrays of equal length"):
        _window("orders", EU, [1.0, 2.0], [10.0])


def test_context_protocol_accepts_test_context() -> None:
    context: EvaluationContext = _context()

    assert context.now == NOW


def test_predict_linear_extends_least_squares_line() -> None:
    times = np.arange(0.0, 3601.0, 60.0)

    class Context:
        now = 3600.0

        def select(self, kpi: str, matchers: object) -> list[SeriesWindow]:
            return [
                SeriesWindow(kpi=kpi, labels=(), timestamps=times, values=times / 600)
            ]

        def key_result(self, name: str) -> None:
            return None

        def anomaly_score(self, kpi: str, labels: object) -> float:
            return float("nan")

    result = evaluate(parse('predict_linear(kpi("a"), 1h, 30m)'), Context())
    assert result[0].value == pytest.approx(9.0)
