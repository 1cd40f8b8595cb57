"""Tests of LikelihoodEnsembleDetector on seeded synthetic series."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from detectors._likelihood import TAIL_DECADES, _SlidingMoments
from detectors.anomaly import LikelihoodEnsembleDetector, make_detector
from detectors.base import STATUS_INSUFFICIENT_DATA, STATUS_OK, DetectorResult
from detectors.errors import DataQualityWarning, InvalidParameterError

START = 1_700_000_000.0
STEP_SECONDS = 300.0
N_ROWS = 3000
SEEDS = pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
# Settings of the tail likelihood layer that scored best on NAB.
TAIL_SETTINGS = {"likelihood": "tail", "threshold": 0.15, "min_sigma": 0.03}


def noisy_series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise around 100 with unit sigma, one row every 5 minutes."""
    rng = np.random.default_rng(seed)
    times = START + np.arange(N_ROWS) * STEP_SECONDS
    return times, 100.0 + rng.normal(0.0, 1.0, N_ROWS)


def stream(times: np.ndarray, values: np.ndarray, **params: object) -> DetectorResult:
    detector = LikelihoodEnsembleDetector(**params)  # type: ignore[arg-type]
    return detector.fit(times[:0], values[:0]).score(times, values)


@SEEDS
def test_likelihood_spike_flagged_once(seed: int) -> None:
    times, values = noisy_series(seed)
    values[2000] += 10.0
    result = stream(times, values)
    assert list(np.flatnonzero(result.flag)) == [2000]


@SEEDS
def test_likelihood_level_shift_flagged_once(seed: int) -> None:
    times, values = noisy_series(seed)
    values[2000:] += 5.0
    result = stream(times, values)
    flagged = np.flatnonzero(result.flag)
    assert len(flagged) == 1
    assert 2000 <= flagged[0] <= 2005


@SEEDS
def test_likelihood_clean_series_not_flagged(seed: int) -> None:
    times, values = noisy_series(seed)
    result = stream(times, values)
    assert not result.flag.any()
    assert result.anomaly_score.max() < 0.5
    assert result.overall_status == STATUS_OK


def test_likelihood_alert_after_cooldown_flagged() -> None:
    times, values = noisy_series(0)
    values[[1500, 1550, 1700]] += 10.0
    result = stream(times, values, cooldown=100)
    flagged = np.flatnonzero(result.flag)
    assert len(flagged) == 2
    assert flagged[0] == 1500
    assert 1700 <= flagged[1] <= 1704


def test_likelihood_cooldown_zeroes_scores() -> None:
    times, values = noisy_series(0)
    values[1500:1520] += 10.0
    result = stream(times, values, cooldown=100)
    assert result.anomaly_score[1500] > 0.5
    assert np.all(result.anomaly_score[1501:1601] == 0.0)


def test_likelihood_cooldown_grows_with_history() -> None:
    times, values = noisy_series(0)
    values[[2000, 2190, 2250]] += 30.0
    result = stream(times, values, cooldown=10, cooldown_fraction=0.1)
    # 2001 values seen at the alert, so the quiet time is 200 samples.
    flagged = np.flatnonzero(result.flag)
    assert np.all(result.anomaly_score[2001:2201] == 0.0)
    assert flagged[0] == 2000
    assert 2250 <= flagged[1] <= 2254


def test_likelihood_alert_score_raised_to_floor() -> None:
    times, values = noisy_series(0)
    values[2000:] += 5.0
    result = stream(times, values, alert_floor=0.8)
    onset = np.flatnonzero(result.flag)
    assert len(onset) == 1
    assert result.anomaly_score[onset[0]] >= 0.8
    others = np.delete(result.anomaly_score, onset)
    assert others.max() <= 0.45


@pytest.mark.parametrize("alert_floor", [0.0, 0.45], ids=["zero", "at-threshold"])
def test_likelihood_low_alert_floor_inactive(alert_floor: float) -> None:
    times, values = noisy_series(1)
    # A small shift, so the likelihood score crosses 0.45 but not 0.5.
    values[2000:] += 3.0
    floored = stream(times, values, alert_floor=alert_floor)
    raised = stream(times, values)
    onset = np.flatnonzero(raised.flag)
    assert list(np.flatnonzero(floored.flag)) == list(onset)
    assert 0.45 < floored.anomaly_score[onset[0]] < 0.5
    assert raised.anomaly_score[onset[0]] == 0.5
    np.testing.assert_array_equal(
        np.delete(floored.anomaly_score, onset), np.delete(raised.anomaly_score, onset)
    )


def test_likelihood_seasonal_change_flagged() -> None:
    times = START + np.arange(N_ROWS) * STEP_SECONDS
    rng = np.random.default_rng(4)
    daily = 10.0 * np.sin(2 * np.pi * (times - START) / 86_400.0)
    values = 100.0 + daily + rng.normal(0.0, 0.2, N_ROWS)
    # The daily swing stops at a zero crossing, so no value or step is out
    # of the usual range.
    values[2016:] = 100.0 + rng.normal(0.0, 0.2, N_ROWS - 2016)
    with_season = stream(times, values)
    without_season = stream(times, values, season_seconds=0.0)
    flagged = np.flatnonzero(with_season.flag)
    assert len(flagged) == 1
    assert 2016 <= flagged[0] <= 2116
    assert not without_season.flag.any()


HOUR_SECONDS = 3600.0
WEEK_SECONDS = 7 * 86_400.0
WEEKDAY_DROP = 40.0


def weekly_series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten weeks of hourly values near 100 on weekdays and 60 at weekends,
    with a daily swing of 5 and unit noise."""
    rng = np.random.default_rng(seed)
    n_rows = 24 * 7 * 10
    times = START + np.arange(n_rows) * HOUR_SECONDS
    day = ((times - START) // 86_400.0).astype(int) % 7
    hour = ((times - START) % 86_400.0) / HOUR_SECONDS
    level = np.where(day >= 5, 60.0, 100.0)
    values = level + 5.0 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 1, n_rows)
    return times, values


@SEEDS
def test_likelihood_weekday_like_weekend_flagged(seed: int) -> None:
    times, values = weekly_series(seed)
    # The third day of week 9 drops to the weekend level. Its step and its
    # change from a day earlier equal those at every weekend start, so only
    # the change from a week earlier is new.
    onset = 24 * 7 * 8 + 24 * 2
    values[onset : onset + 24] -= WEEKDAY_DROP
    weekly = stream(times, values, second_season_seconds=WEEK_SECONDS)
    daily_only = stream(times, values)
    first_weekend = 24 * 5
    weekly_flagged = np.flatnonzero(weekly.flag)
    assert weekly_flagged[0] == first_weekend
    assert len(weekly_flagged) == 2
    assert onset <= weekly_flagged[1] < onset + 24
    assert list(np.flatnonzero(daily_only.flag)) == [first_weekend]


def test_likelihood_second_season_waits_for_history() -> None:
    times, values = noisy_series(0)
    # 1500 rows of 5 minutes span 5.2 days, less than the second season,
    # so that view never has a value one season back.
    times, values = times[:1500], values[:1500]
    values[1000] += 10.0
    with_second = stream(times, values, second_season_seconds=WEEK_SECONDS)
    without_second = stream(times, values)
    assert with_second.flag[1000]
    np.testing.assert_array_equal(with_second.score, without_second.score)


def test_likelihood_anomaly_score_equals_score() -> None:
    times, values = noisy_series(1)
    values[2000] += 10.0
    result = stream(times, values)
    np.testing.assert_array_equal(result.anomaly_score, result.score)


@SEEDS
def test_likelihood_tail_spike_flagged_once(seed: int) -> None:
    times, values = noisy_series(seed)
    values[2000] += 10.0
    result = stream(times, values, **TAIL_SETTINGS)
    assert list(np.flatnonzero(result.flag)) == [2000]
    assert result.anomaly_score[2000] == 0.5


@SEEDS
def test_likelihood_tail_level_shift_flagged_once(seed: int) -> None:
    times, values = noisy_series(seed)
    values[2000:] += 5.0
    flagged = np.flatnonzero(stream(times, values, **TAIL_SETTINGS).flag)
    assert len(flagged) == 1
    assert 2000 <= flagged[0] <= 2005


@SEEDS
def test_likelihood_tail_clean_series_not_flagged(seed: int) -> None:
    times, values = noisy_series(seed)
    result = stream(times, values, **TAIL_SETTINGS)
    assert not result.flag.any()
    assert result.anomaly_score.max() < 0.15


def test_likelihood_tail_score_by_hand() -> None:
    detector = LikelihoodEnsembleDetector(likelihood="tail", likelihood_window=4)
    detector.fit([], [])
    for surprise in (0.0, 0.1, 0.0, 0.1, 0.9):
        detector._tail_score(surprise, 0.0)
    # The window keeps the last 4 surprises, 0.1, 0.0, 0.1 and 0.9: mean
    # 0.275 and sample standard deviation 0.4193. An average of 0.6 lies
    # 0.7751 standard deviations above the mean, a tail probability of 0.2191.
    mean = 0.275
    sigma = math.sqrt((0.175**2 + 0.275**2 + 0.175**2 + 0.625**2) / 3.0)
    tail = 0.5 * math.erfc((0.6 - mean) / sigma / math.sqrt(2.0))
    assert tail == pytest.approx(0.2191, abs=1e-4)
    score = detector._tail_score(0.0, 0.6)
    assert score == pytest.approx(-math.log10(tail) / TAIL_DECADES)
    # Far beyond the window's spread the tail probability underflows to 0.
    assert detector._tail_score(0.0, 1e6) == 1.0


def test_sliding_moments_match_numpy() -> None:
    rng = np.random.default_rng(4)
    values = rng.random(250)
    moments = _SlidingMoments(100)
    for count, value in enumerate(values, start=1):
        moments.update(float(value))
        kept = values[max(0, count - 100) : count]
        assert moments.count == len(kept)
        assert moments.mean == pytest.approx(np.mean(kept), abs=1e-12)
        if count >= 2:
            assert moments.var == pytest.approx(np.var(kept, ddof=1), abs=1e-12)


@pytest.mark.parametrize(
    "values",
    [np.empty(0), np.array([3.0]), np.full(40, 7.0), np.full(20, np.nan)],
    ids=["empty", "one-value", "shorter-than-min-samples", "all-nan"],
)
def test_likelihood_short_input_insufficient(values: np.ndarray) -> None:
    times = START + np.arange(len(values)) * STEP_SECONDS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        result = stream(times, values)
    assert result.overall_status == STATUS_INSUFFICIENT_DATA
    assert np.all(result.status == STATUS_INSUFFICIENT_DATA)
    assert not result.flag.any()


def test_likelihood_huge_values_finite() -> None:
    times, values = noisy_series(2)
    values[::2] = 1e300
    with np.errstate(all="raise"):
        result = stream(times, values)
    assert np.all(np.isfinite(result.score))
    assert np.all((result.anomaly_score >= 0) & (result.anomaly_score <= 1))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"short_window": 0}, r"'short_window' .* \[1, inf\); got 0"),
        ({"threshold": 1.0}, r"'threshold' .* \(0, 1\); got 1\.0"),
        ({"min_sigma": 0.0}, r"'min_sigma' .* \(0, inf\); got 0\.0"),
        ({"alert_floor": 1.5}, r"'alert_floor' .* \[0, 1\]; got 1\.5"),
        (
            {"second_season_seconds": -1.0},
            r"'second_season_seconds' .* \[0, inf\); got -1\.0",
        ),
        (
            {"second_season_weight": -0.5},
            r"'second_season_weight' .* \[0, inf\); got -0\.5",
        ),
        (
            {"likelihood": "normal"},
            r"'likelihood' .* one of 'distance', 'tail'; got 'normal'",
        ),
    ],
    ids=[
        "zero-short-window",
        "threshold-one",
        "zero-min-sigma",
        "alert-floor-above-one",
        "negative-second-season",
        "negative-second-season-weight",
        "unknown-likelihood",
    ],
)
def test_likelihood_invalid_parameter_rejected(
    params: dict[str, object], message: str
) -> None:
    detector = make_detector("likelihood_ensemble", **params)
    with pytest.raises(InvalidParameterError, match=message):
        detector.fit([], [])
