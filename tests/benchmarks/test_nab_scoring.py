"""Tests of our NAB scorer against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.nab.scoring import (
    NabFile,
    Profile,
    count_windows,
    normalise,
    optimise_threshold,
    probation_rows,
    raw_score,
    scaled_sigmoid,
    sweep_values,
)

STANDARD = Profile(name="standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = Profile(
    name="reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0
)


def sigmoid(x: float) -> float:
    """The scaled sigmoid written out: 2 / (1 + e^(5x)) - 1."""
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def make_file(
    n_rows: int = 1000, windows: tuple[tuple[int, int], ...] = ((400, 499),)
) -> NabFile:
    return NabFile(
        name="example/one.csv",
        timestamps=np.arange(n_rows, dtype=np.float64) * 300.0,
        values=np.zeros(n_rows),
        windows=windows,
    )


def alerts_at(rows: list[int], n_rows: int = 1000) -> np.ndarray:
    scores = np.zeros(n_rows)
    scores[rows] = 1.0
    return scores


@pytest.mark.parametrize(
    ("x", "expected"),
    [(-1.0, 0.9866143), (-0.5, 0.8482836), (0.0, 0.0), (1.0, -0.9866143), (3.5, -1.0)],
    ids=["minus-one", "minus-half", "zero", "one", "beyond-cutoff"],
)
def test_scaled_sigmoid_published_values(x: float, expected: float) -> None:
    assert float(scaled_sigmoid(x)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("n_rows", "expected"),
    [(1000, 150), (4032, 604), (5000, 750), (22695, 750), (7, 1)],
    ids=["thousand", "nab-small", "cap-boundary", "capped", "tiny"],
)
def test_probation_rows_fifteen_percent_capped(n_rows: int, expected: int) -> None:
    assert probation_rows(n_rows) == expected


def test_sweep_values_inside_window_by_hand() -> None:
    values, window_ids = sweep_values(1000, [(400, 499)], STANDARD)
    # Row L+25 of a 100-row window: x = -(499 - 425 + 1) / 100 = -0.75, so
    # v = sigma(-0.75) / sigma(-1) = 0.95434 / 0.98661 = 0.96729.
    assert values[425] == pytest.approx(sigmoid(-0.75) / sigmoid(-1.0))
    assert values[425] == pytest.approx(0.967, abs=5e-4)
    assert values[400] == pytest.approx(1.0)
    # Last row: x = -1/100, v = sigma(-0.01) / sigma(-1) = 0.02500 / 0.98661.
    assert values[499] == pytest.approx(0.0253, abs=5e-5)
    assert window_ids[399] == -1
    assert window_ids[400] == 0
    assert window_ids[499] == 0
    assert window_ids[500] == -1


def test_sweep_values_outside_window_by_hand() -> None:
    values, _ = sweep_values(1000, [(400, 499)], STANDARD)
    # Before the first window every alert costs the full fp weight.
    assert values[200] == pytest.approx(-0.11)
    # Right after: x = (500 - 499) / (100 - 1) = 0.0101, v = 0.11 * sigma(x).
    assert values[500] == pytest.approx(0.11 * sigmoid(1 / 99))
    assert values[500] == pytest.approx(-0.0028, abs=5e-5)
    # One window later: x = 101 / 99, v = 0.11 * sigma(1.0202) = -0.10868.
    assert values[600] == pytest.approx(0.11 * sigmoid(101 / 99))
    # Three window-lengths on: x = 401 / 99 > 3, so v = -0.11 exactly.
    assert values[900] == -0.11


@pytest.mark.parametrize(
    ("alert_rows", "expected"),
    [
        ([], -1.0),
        ([400], 1.0),
        ([450], 0.8598),
        ([499], 0.0253),
        ([400, 450], 1.0),
        ([200], -1.11),
        ([500], -1.0028),
        ([600], -1.1087),
        ([900], -1.11),
        ([10], -1.0),
    ],
    ids=[
        "no-alert",
        "first-row",
        "middle",
        "last-row",
        "second-alert-ignored",
        "false-before-window",
        "false-right-after",
        "false-one-window-later",
        "false-far-after",
        "probation-ignored",
    ],
)
def test_raw_score_worked_example(alert_rows: list[int], expected: float) -> None:
    # One file of 1000 rows, probation 150 rows, one window over rows 400-499.
    # A miss costs -1 (fn weight); the middle alert at row 450 gets
    # x = -(499 - 450 + 1) / 100 = -0.5 and sigma(-0.5) / sigma(-1) =
    # 0.84828 / 0.98661 = 0.8598; a false alert at row 600 costs
    # 0.11 * sigma(101 / 99) = -0.1087 on top of the miss.
    nab_file = make_file()
    score = raw_score([nab_file], [alerts_at(alert_rows)], 0.5, STANDARD)
    assert score == pytest.approx(expected, abs=5e-5)


def test_raw_score_every_false_alert_charged() -> None:
    # Twenty consecutive alerts before the window cost 20 * 0.11 = 2.2 on top
    # of the missed window.
    score = raw_score([make_file()], [alerts_at(list(range(200, 220)))], 0.5, STANDARD)
    assert score == pytest.approx(-1.0 - 20 * 0.11)


def test_raw_score_penalty_measured_from_preceding_window() -> None:
    # Windows at 300-399 and 700-799. An alert at row 690 is measured from the
    # first window: x = (690 - 399) / 99 = 2.939, so it costs
    # 0.11 * sigma(2.939); both windows are missed (-2).
    nab_file = make_file(windows=((300, 399), (700, 799)))
    score = raw_score([nab_file], [alerts_at([690])], 0.5, STANDARD)
    assert score == pytest.approx(-2.0 + 0.11 * sigmoid(291 / 99))


def test_optimise_threshold_picks_best_and_highest() -> None:
    # Scores: 0.9 on row 420 (in the window), 0.7 on rows 200 and 210 (false
    # alerts), 0.2 elsewhere. At 0.9 the score is
    # sigma(-(499 - 420 + 1) / 100) / sigma(-1) = sigma(-0.8) / sigma(-1) = 0.97574.
    # At 0.7 two false alerts cost 0.22 more; at 0.2 every scored row alerts.
    scores = np.full(1000, 0.2)
    scores[420] = 0.9
    scores[[200, 210]] = 0.7
    threshold, best = optimise_threshold([make_file()], [scores], STANDARD)
    assert threshold == 0.9
    assert best == pytest.approx(sigmoid(-0.8) / sigmoid(-1.0))


def test_optimise_threshold_never_alert_when_all_false() -> None:
    scores = np.zeros(1000)
    scores[[200, 300]] = 0.8
    threshold, best = optimise_threshold([make_file()], [scores], STANDARD)
    assert threshold == 1.1
    assert best == pytest.approx(-1.0)


def test_optimise_threshold_matches_raw_score() -> None:
    rng = np.random.default_rng(7)
    files = [make_file(), make_file(windows=((300, 349), (800, 899)))]
    scores = [rng.random(1000), rng.random(1000)]
    threshold, best = optimise_threshold(files, scores, LOW_FN)
    assert raw_score(files, scores, threshold, LOW_FN) == pytest.approx(best)
    for candidate in (0.5, 0.9, 0.99, 0.999):
        assert raw_score(files, scores, candidate, LOW_FN) <= best + 1e-9


def test_normalise_null_and_perfect() -> None:
    files = [make_file(), make_file(windows=((300, 349), (800, 899)))]
    n_windows = count_windows(files)
    assert n_windows == 3
    assert normalise(-3.0, n_windows, STANDARD) == pytest.approx(0.0)
    assert normalise(3.0, n_windows, STANDARD) == pytest.approx(100.0)
    # reward_low_FN: 100 * (S + 2 * 3) / (3 + 2 * 3); S = 0 gives 66.67.
    assert normalise(0.0, n_windows, LOW_FN) == pytest.approx(200.0 / 3.0)


def test_raw_score_perfect_detector_earns_one_per_window() -> None:
    nab_file = make_file(windows=((300, 349), (800, 899)))
    score = raw_score([nab_file], [alerts_at([300, 800])], 0.5, STANDARD)
    assert score == pytest.approx(2.0)
