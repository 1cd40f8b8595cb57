"""Property tests: the key result forecast returns a defined result on any input."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.keyresults import STATUSES, KeyResultSpec, forecast_key_result

DAY = 86400.0
START = 1_704_067_200.0

values_strategy = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6),
        st.just(math.nan),
        st.just(math.inf),
    ),
    min_size=0,
    max_size=60,
)
offsets_strategy = st.lists(
    st.floats(min_value=-120 * DAY, max_value=120 * DAY), min_size=0, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(
    values=values_strategy,
    offsets=offsets_strategy,
    measure=st.sampled_from(["level", "cumulative"]),
    direction=st.sampled_from(["increase", "decrease"]),
    target=st.floats(min_value=-1e6, max_value=1e6),
    now_offset=st.floats(min_value=-30 * DAY, max_value=120 * DAY),
)
def test_forecast_any_input_defined_status(
    values: list[float],
    offsets: list[float],
    measure: str,
    direction: str,
    target: float,
    now_offset: float,
) -> None:
    size = min(len(values), len(offsets))
    spec = KeyResultSpec(
        measure=measure,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        baseline=0.0,
        target=target,
        start=START,
        due=START + 91 * DAY,
    )
    times = START + np.array(offsets[:size])
    result = forecast_key_result(
        spec, times, np.array(values[:size]), START + now_offset
    )
    assert result.status in STATUSES
    assert result.reason.endswith(".")
    if result.status == "insufficient_data":
        assert math.isnan(result.attainment_probability)
    else:
        assert 0.0 <= result.attainment_probability <= 1.0
        assert result.lower_95 <= result.lower_80 <= result.forecast
        assert result.forecast <= result.upper_80 <= result.upper_95


@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(min_value=-1e3, max_value=1e3),
    count=st.integers(min_value=0, max_value=40),
    repeats=st.integers(min_value=1, max_value=3),
    measure=st.sampled_from(["level", "cumulative"]),
)
def test_forecast_constant_and_duplicated_series(
    value: float, count: int, repeats: int, measure: str
) -> None:
    spec = KeyResultSpec(
        measure=measure,  # type: ignore[arg-type]
        direction="increase",
        baseline=value,
        target=value,
        start=START,
        due=START + 91 * DAY,
    )
    times = np.repeat(START - np.arange(count)[::-1] * DAY, repeats)
    result = forecast_key_result(spec, times, np.full(times.size, value), START)
    assert result.status in STATUSES
    assert math.isnan(result.progress)


def test_forecast_mismatched_lengths_insufficient() -> None:
    spec = KeyResultSpec(
        measure="level",
        direction="increase",
        baseline=0.0,
        target=1.0,
        start=START,
        due=START + 91 * DAY,
    )
    result = forecast_key_result(spec, np.arange(5.0), np.arange(4.0), START)
    assert result.status == "insufficient_data"
    assert "5 timestamps but 4 values" in result.reason


def test_forecast_non_numeric_input_insufficient() -> None:
    spec = KeyResultSpec(
        measure="level",
        direction="increase",
        baseline=0.0,
        target=1.0,
        start=START,
        due=START + 91 * DAY,
    )
    result = forecast_key_result(
        spec, np.array(["a", "b"]), np.array([1.0, 2.0]), START
    )
    assert result.status == "insufficient_data"
    assert result.reason == "The samples are not numeric arrays."


def test_forecast_unsorted_input_matches_sorted() -> None:
    rng = np.random.default_rng(3)
    times = START - np.arange(40)[::-1] * DAY
    values = 50.0 + rng.normal(0.0, 1.0, times.size)
    order = rng.permutation(times.size)
    spec = KeyResultSpec(
        measure="level",
        direction="increase",
        baseline=50.0,
        target=52.0,
        start=START,
        due=START + 91 * DAY,
    )
    ordered = forecast_key_result(spec, times, values, START)
    shuffled = forecast_key_result(spec, times[order], values[order], START)
    assert shuffled == ordered
