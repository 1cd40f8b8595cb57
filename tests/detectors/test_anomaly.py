"""Tests of the anomaly detectors on seeded synthetic series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.anomaly import DETECTOR_TYPES, SeasonalMadDetector, make_detector
from detectors.base import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    BaseDetector,
    DetectorResult,
)
from detectors.errors import (
    DataQualityWarning,
    InputShapeError,
    InvalidParameterError,
    NotFittedError,
    UnknownDetectorError,
)

START = 1_700_000_000.0
STEP_SECONDS = 300.0
SEASONAL_ROWS = 3000
PLAIN_ROWS = 600
TYPE_NAMES = sorted(DETECTOR_TYPES)


def rows_for(type_name: str) -> int:
    return SEASONAL_ROWS if type_name == "seasonal_mad" else PLAIN_ROWS


def make_series(
    type_name: str,
    seed: int,
    *,
    spike_at: int | None = None,
    shift_at: int | None = None,
    shift: float = 4.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise around 100 with unit sigma; the seasonal detector gets a
    daily sine of amplitude 10 on top."""
    n_rows = rows_for(type_name)
    rng = np.random.default_rng(seed)
    times = START + np.arange(n_rows) * STEP_SECONDS
    values = 100.0 + rng.normal(0.0, 1.0, n_rows)
    if type_name == "seasonal_mad":
        values += 10.0 * np.sin(2 * np.pi * times / 86_400.0)
    if spike_at is not None:
        values[spike_at] += 12.0
    if shift_at is not None:
        values[shift_at:] += shift
    return times, values


def stream(
    detector: BaseDetector, times: np.ndarray, values: np.ndarray
) -> DetectorResult:
    return detector.fit(times[:0], values[:0]).score(times, values)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
@pytest.mark.parametrize("seed", [0, 2, 3], ids=["seed0", "seed2", "seed3"])
def test_detector_flags_spike_at_its_index(type_name: str, seed: int) -> None:
    spike_at = rows_for(type_name) - 200
    times, values = make_series(type_name, seed, spike_at=spike_at)
    result = stream(make_detector(type_name), times, values)
    assert result.flag[spike_at]
    assert not result.flag[:spike_at].any()
    assert result.status[spike_at] == STATUS_OK


@pytest.mark.parametrize("type_name", TYPE_NAMES)
@pytest.mark.parametrize("seed", [0, 2, 3], ids=["seed0", "seed2", "seed3"])
def test_detector_flags_level_shift_soon(type_name: str, seed: int) -> None:
    shift_at = rows_for(type_name) - 200
    shift = 8.0 if type_name == "seasonal_mad" else 4.0
    times, values = make_series(type_name, seed, shift_at=shift_at, shift=shift)
    result = stream(make_detector(type_name), times, values)
    flagged = np.flatnonzero(result.flag)
    assert len(flagged) > 0
    assert shift_at <= flagged[0] <= shift_at + 10


@pytest.mark.parametrize("type_name", TYPE_NAMES)
@pytest.mark.parametrize("seed", [0, 2, 3], ids=["seed0", "seed2", "seed3"])
def test_detector_clean_series_not_flagged(type_name: str, seed: int) -> None:
    times, values = make_series(type_name, seed)
    result = stream(make_detector(type_name), times, values)
    assert not result.flag.any()
    assert result.overall_status == STATUS_OK


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_result_arrays_well_formed(type_name: str) -> None:
    times, values = make_series(type_name, 0, spike_at=rows_for(type_name) - 200)
    result = stream(make_detector(type_name), times, values)
    ok = result.status == STATUS_OK
    assert len(result) == len(values)
    assert np.all(result.score >= 0)
    assert np.all((result.anomaly_score >= 0) & (result.anomaly_score <= 1))
    assert np.all(np.isfinite(result.lower[ok]))
    assert np.all(result.lower[ok] <= result.upper[ok])
    assert not result.flag[~ok].any()
    assert np.all(result.score[~ok] == 0)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_streaming_matches_one_batch(type_name: str) -> None:
    times, values = make_series(type_name, 1, spike_at=rows_for(type_name) - 200)
    whole = stream(make_detector(type_name), times, values)
    detector = make_detector(type_name).fit(times[:0], values[:0])
    parts = [
        detector.score(times[start : start + 97], values[start : start + 97])
        for start in range(0, len(values), 97)
    ]
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), whole.score)
    assert np.array_equal(np.concatenate([p.flag for p in parts]), whole.flag)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_fit_on_history_then_score(type_name: str) -> None:
    spike_at = rows_for(type_name) - 200
    times, values = make_series(type_name, 2, spike_at=spike_at)
    split = spike_at - 100
    detector = make_detector(type_name).fit(times[:split], values[:split])
    result = detector.score(times[split:], values[split:])
    assert result.status[0] == STATUS_OK
    assert result.flag[100]


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_constant_series_flags_change(type_name: str) -> None:
    n_rows = rows_for(type_name)
    times = START + np.arange(n_rows) * STEP_SECONDS
    values = np.full(n_rows, 5.0)
    values[n_rows - 50] = 6.0
    result = stream(make_detector(type_name), times, values)
    assert np.all(np.isfinite(result.score))
    assert not result.flag[: n_rows - 50].any()
    assert result.flag[n_rows - 50]


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_all_nan_insufficient(type_name: str) -> None:
    times = START + np.arange(50) * STEP_SECONDS
    values = np.full(50, np.nan)
    with pytest.warns(DataQualityWarning, match="50 of 50 values are NaN"):
        result = stream(make_detector(type_name), times, values)
    assert np.all(result.status == STATUS_INSUFFICIENT_DATA)
    assert result.overall_status == STATUS_INSUFFICIENT_DATA
    assert not result.flag.any()
    assert np.all(result.score == 0)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_one_point_insufficient(type_name: str) -> None:
    result = stream(make_detector(type_name), np.array([START]), np.array([1.0]))
    assert list(result.status) == [STATUS_INSUFFICIENT_DATA]
    assert not result.flag[0]


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_empty_input_empty_result(type_name: str) -> None:
    result = stream(make_detector(type_name), np.empty(0), np.empty(0))
    assert len(result) == 0
    assert result.overall_status == STATUS_INSUFFICIENT_DATA


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_nan_skipped_not_propagated(type_name: str) -> None:
    times, values = make_series(type_name, 0)
    values[[300, 301, 450]] = np.nan
    with pytest.warns(DataQualityWarning, match="3 of"):
        result = stream(make_detector(type_name), times, values)
    assert np.all(np.isfinite(result.score))
    assert list(result.status[[300, 301, 450]]) == [STATUS_INSUFFICIENT_DATA] * 3
    assert result.status[302] == STATUS_OK
    assert np.isfinite(result.lower[302])
    assert not result.flag.any()


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_duplicate_timestamps_warn(type_name: str) -> None:
    times, values = make_series(type_name, 0)
    times[200:210] = times[200]
    with pytest.warns(DataQualityWarning, match="9 samples repeat"):
        result = stream(make_detector(type_name), times, values)
    assert result.status[-1] == STATUS_OK
    assert not result.flag.any()


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_detector_gap_keeps_scoring(type_name: str) -> None:
    times, values = make_series(type_name, 3, spike_at=rows_for(type_name) - 100)
    times[rows_for(type_name) // 2 :] += 3 * 86_400.0
    result = stream(make_detector(type_name), times, values)
    spike_at = rows_for(type_name) - 100
    assert result.status[spike_at] == STATUS_OK
    assert result.flag[spike_at]


def test_seasonal_detector_chooses_profile_by_history() -> None:
    times, values = make_series("seasonal_mad", 0)
    short = SeasonalMadDetector().fit(times[:200], values[:200])
    assert short.season_ == "none"
    long = SeasonalMadDetector().fit(times, values)
    assert long.season_ == "daily"


def test_seasonal_detector_forced_weekly_insufficient() -> None:
    times, values = make_series("seasonal_mad", 0)
    result = stream(make_detector("seasonal_mad", season="weekly"), times, values)
    assert result.overall_status == STATUS_INSUFFICIENT_DATA


def test_cusum_restarts_after_shift() -> None:
    times, values = make_series("cusum", 0, shift_at=400)
    result = stream(make_detector("cusum"), times, values)
    flagged = np.flatnonzero(result.flag)
    assert len(flagged) == 1
    assert result.status[flagged[0] + 1] == STATUS_INSUFFICIENT_DATA
    assert result.status[-1] == STATUS_OK


@pytest.mark.parametrize(
    ("type_name", "params", "message"),
    [
        (
            "robust_z",
            {"window": 2},
            r"'window' parameter of RobustZDetector must be "
            r"an int in the range \[3, inf\); got 2\.",
        ),
        (
            "robust_z",
            {"threshold": -1.0},
            r"'threshold' .* a float in the range "
            r"\(0, inf\); got -1\.0\.",
        ),
        ("robust_z", {"window": 10.5}, r"'window' .* an int .*; got 10\.5"),
        (
            "robust_z",
            {"min_samples": 500},
            r"'min_samples' .* at most window=200; "
            r"got 500",
        ),
        (
            "ewma",
            {"smoothing": 0.0},
            r"'smoothing' parameter of EwmaDetector must be "
            r"a float in the range \(0, 1\]; got 0\.0",
        ),
        ("cusum", {"drift": True}, r"'drift' .* got True"),
        (
            "seasonal_mad",
            {"season": "monthly"},
            r"'season' .* one of 'auto', "
            r"'daily', 'weekly', 'none'; got 'monthly'",
        ),
        (
            "isolation_forest",
            {"random_state": -3},
            r"'random_state' .* an int in "
            r"the range \[0, inf\) or None; got -3",
        ),
    ],
    ids=[
        "window-too-small",
        "negative-threshold",
        "float-window",
        "min-samples-over-window",
        "zero-smoothing",
        "bool-drift",
        "unknown-season",
        "negative-seed",
    ],
)
def test_detector_invalid_parameter_rejected(
    type_name: str, params: dict[str, object], message: str
) -> None:
    detector = make_detector(type_name, **params)
    with pytest.raises(InvalidParameterError, match=message):
        detector.fit([], [])


def test_detector_parameters_stored_unchanged() -> None:
    detector = make_detector("robust_z", window=2)
    assert detector.get_params() == {"window": 2, "threshold": 4.0, "min_samples": 50}
    assert repr(detector) == "RobustZDetector(window=2, threshold=4.0, min_samples=50)"


def test_detector_set_params_unknown_rejected() -> None:
    with pytest.raises(InvalidParameterError, match=r"'windw' parameter .* got"):
        make_detector("robust_z").set_params(windw=5)


def test_detector_score_before_fit_rejected() -> None:
    with pytest.raises(NotFittedError, match="RobustZDetector is not fitted yet"):
        make_detector("robust_z").score([START], [1.0])


def test_detector_mismatched_lengths_rejected() -> None:
    with pytest.raises(InputShapeError, match="Got 2 timestamps but 1 values"):
        make_detector("ewma").fit([START, START + 1], [1.0])


def test_make_detector_unknown_type_suggests() -> None:
    with pytest.raises(UnknownDetectorError, match="Did you mean 'robust_z'"):
        make_detector("robust-z")


values_strategy = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6),
        st.just(math.nan),
        st.sampled_from([0.0, 1.0]),
    ),
    min_size=0,
    max_size=150,
)
steps_strategy = st.lists(st.sampled_from([0.0, 60.0, 300.0, 86_400.0]), max_size=150)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
@settings(max_examples=25, deadline=None)
@given(values=values_strategy, steps=steps_strategy)
def test_detector_edge_cases_never_raise(
    type_name: str, values: list[float], steps: list[float]
) -> None:
    series = np.array(values, dtype=float)
    gaps = np.resize(np.array(steps or [300.0]), len(series))
    times = START + np.cumsum(gaps)
    detector = make_detector(type_name, min_samples=30)
    if type_name == "robust_z":
        detector.set_params(window=30)
    # Underflow of subnormal inputs to zero is exact enough and not an error.
    with np.errstate(all="raise", under="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            result = stream(detector, times, series)
    assert len(result) == len(series)
    assert np.all(np.isfinite(result.score))
    assert np.all((result.anomaly_score >= 0) & (result.anomaly_score <= 1))
    assert set(result.status) <= {STATUS_OK, STATUS_INSUFFICIENT_DATA}
    assert not np.any(result.flag & (result.status != STATUS_OK))
    assert np.all(result.status[~np.isfinite(series)] == STATUS_INSUFFICIENT_DATA)


def test_robust_ensemble_reports_onset_once() -> None:
    times, values = make_series("robust_ensemble", 0, shift_at=400, shift=6.0)
    result = stream(make_detector("robust_ensemble"), times, values)
    plain = stream(make_detector("robust_z"), times, values)
    flagged = np.flatnonzero(result.flag)
    assert flagged[0] == 400
    assert len(flagged) <= 3
    assert np.count_nonzero(plain.flag) > 10
