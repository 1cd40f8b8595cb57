"""Tests of the random half splits of the NAB corpus and their held-out scores."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from benchmarks.nab.run import main
from benchmarks.nab.scoring import NabFile, Profile
from benchmarks.nab.splits import (
    SplitScores,
    category_of,
    compare_paired,
    draw_stratified_splits,
    score_held_out,
    score_random_splits,
    select_on_tuning_half,
)

STANDARD = Profile(name="standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
# Files per category in our NAB corpus: three categories have an odd count.
CATEGORY_SIZES = {
    "artificialNoAnomaly": 5,
    "artificialWithAnomaly": 6,
    "realAdExchange": 6,
    "realKnownCause": 7,
    "realTraffic": 7,
    "realTweets": 10,
}
N_ROWS = 1000
WINDOW = (400, 499)


def make_file(name: str) -> NabFile:
    return NabFile(
        name=name,
        timestamps=np.arange(N_ROWS, dtype=np.float64) * 300.0,
        values=np.zeros(N_ROWS),
        windows=(WINDOW,),
    )


def make_corpus() -> list[NabFile]:
    return [
        make_file(f"{category}/file_{number}.csv")
        for category, size in sorted(CATEGORY_SIZES.items())
        for number in range(size)
    ]


def test_draw_stratified_splits_every_file_once() -> None:
    files = make_corpus()
    for split in draw_stratified_splits(files, n_splits=25, seed=3):
        assert not set(split.half_a) & set(split.half_b)
        assert sorted(split.half_a + split.half_b) == list(range(len(files)))
        assert list(split.half_a) == sorted(split.half_a)


def test_draw_stratified_splits_balances_categories() -> None:
    files = make_corpus()
    for split in draw_stratified_splits(files, n_splits=25, seed=3):
        in_a = Counter(category_of(files[i]) for i in split.half_a)
        for category, size in CATEGORY_SIZES.items():
            assert in_a[category] in {size // 2, size - size // 2}, category
        # 41 files: the three odd categories give their extra file to the
        # halves in turn, so the halves hold 20 and 21 files.
        assert abs(len(split.half_a) - len(split.half_b)) <= 1


def test_draw_stratified_splits_same_seed_same_splits() -> None:
    files = make_corpus()
    first = draw_stratified_splits(files, n_splits=5, seed=11)
    again = draw_stratified_splits(files, n_splits=5, seed=11)
    other = draw_stratified_splits(files, n_splits=5, seed=12)
    assert first == again
    assert first != other


def test_draw_stratified_splits_varies_between_splits() -> None:
    files = make_corpus()
    splits = draw_stratified_splits(files, n_splits=20, seed=0)
    assert len({split.half_a for split in splits}) == 20
    # Every file lands in half A in some split and in half B in another.
    times_in_a = Counter(i for split in splits for i in split.half_a)
    assert all(0 < times_in_a[i] < 20 for i in range(len(files)))


def test_draw_stratified_splits_rejects_zero_splits() -> None:
    with pytest.raises(ValueError, match="Invalid number of splits 0"):
        draw_stratified_splits(make_corpus(), n_splits=0, seed=0)


def make_scores(
    a_to_b: tuple[float, ...],
    b_to_a: tuple[float, ...],
    tuned: tuple[float, ...] | None = None,
    seed: int = 0,
) -> SplitScores:
    """Build split scores; ``tuned`` lists the tuned_a then tuned_b scores."""
    if tuned is None:
        tuned = (0.0,) * (2 * len(a_to_b))
    return SplitScores(
        seed=seed,
        a_to_b=a_to_b,
        b_to_a=b_to_a,
        tuned_a=tuned[: len(a_to_b)],
        tuned_b=tuned[len(a_to_b) :],
    )


def test_split_scores_statistics_by_hand() -> None:
    scores = make_scores(a_to_b=(60.0, 70.0), b_to_a=(64.0, 66.0))
    assert list(scores.directions) == [60.0, 64.0, 70.0, 66.0]
    assert scores.mean == pytest.approx(65.0)
    # Deviations -5, -1, 5, 1: sum of squares 52 over 3 degrees of freedom.
    assert scores.std == pytest.approx(math.sqrt(52.0 / 3.0))
    # Per-split means 62 and 68: standard deviation 4.243, over sqrt(2).
    assert scores.standard_error == pytest.approx(math.sqrt(18.0) / math.sqrt(2.0))


def test_compare_paired_gain_by_hand() -> None:
    baseline = make_scores(a_to_b=(60.0, 70.0), b_to_a=(64.0, 66.0))
    # Gains on half B: +2, -1; on half A: +4, +1.
    candidate = make_scores(a_to_b=(62.0, 69.0), b_to_a=(68.0, 67.0))
    gain = compare_paired(baseline, candidate)
    assert gain.mean == pytest.approx(1.5)
    # Per-split mean gains 3 and 0: standard deviation 2.121, over sqrt(2).
    assert gain.split_standard_error == pytest.approx(1.5)
    # Half the gain difference (A - B) is +1 and +1.
    assert gain.file_standard_error == pytest.approx(1.0)
    assert gain.directions_won == 3
    assert gain.directions_lost == 1
    assert gain.n_directions == 4


def test_compare_paired_rejects_other_splits() -> None:
    baseline = make_scores(a_to_b=(60.0, 70.0), b_to_a=(64.0, 66.0), seed=0)
    candidate = make_scores(a_to_b=(60.0, 70.0), b_to_a=(64.0, 66.0), seed=1)
    with pytest.raises(ValueError, match="different splits .*same --splits"):
        compare_paired(baseline, candidate)


def test_select_on_tuning_half_picks_best_tuned() -> None:
    # Directions in order: split 0 A->B, split 1 A->B, split 0 B->A, split 1
    # B->A. The first run wins the tuning half of the first and last
    # direction (a tie goes to the first run), the second run the others.
    first = make_scores(
        a_to_b=(60.0, 70.0), b_to_a=(64.0, 66.0), tuned=(80.0, 70.0, 71.0, 75.0)
    )
    second = make_scores(
        a_to_b=(50.0, 90.0), b_to_a=(74.0, 10.0), tuned=(79.0, 72.0, 72.0, 75.0)
    )
    mean, times_chosen = select_on_tuning_half([first, second])
    # Held out: 60 (first), 90 (second), 74 (second), 66 (first).
    assert mean == pytest.approx((60.0 + 90.0 + 74.0 + 66.0) / 4.0)
    assert times_chosen == [2, 2]


def test_score_held_out_uses_tuned_threshold() -> None:
    # File 0 is detected at 0.9 and has a false alert at 0.8, so its best
    # threshold is 0.9. File 1 has its detection at 0.7 only, which that
    # threshold misses: the held-out score is the null score 0.
    files = [make_file("a/zero.csv"), make_file("a/one.csv")]
    tune_scores = np.zeros(N_ROWS)
    tune_scores[[WINDOW[0], 200]] = [0.9, 0.8]
    test_scores = np.zeros(N_ROWS)
    test_scores[WINDOW[0]] = 0.7
    scores = [tune_scores, test_scores]
    assert score_held_out(files, scores, [0], [1], STANDARD) == pytest.approx(0.0)
    # Tuned on file 1 the threshold is 0.7, which finds file 0's window on its
    # first row (+1) and charges the false alert (-0.11): 100 * 1.89 / 2.
    assert score_held_out(files, scores, [1], [0], STANDARD) == pytest.approx(94.5)


def test_score_random_splits_perfect_detector_scores_hundred() -> None:
    files = make_corpus()
    perfect = np.zeros(N_ROWS)
    perfect[WINDOW[0]] = 1.0
    result = score_random_splits(
        files, [perfect] * len(files), STANDARD, n_splits=4, seed=1
    )
    assert result.a_to_b == pytest.approx((100.0,) * 4)
    assert result.b_to_a == pytest.approx((100.0,) * 4)
    assert result.std == pytest.approx(0.0)
    assert result.tuned_a == pytest.approx((100.0,) * 4)
    assert result.tuned_b == pytest.approx((100.0,) * 4)


def test_score_random_splits_matches_each_split() -> None:
    files = make_corpus()
    generator = np.random.default_rng(5)
    scores = [generator.random(N_ROWS) for _ in files]
    result = score_random_splits(files, scores, STANDARD, n_splits=3, seed=9)
    splits = draw_stratified_splits(files, n_splits=3, seed=9)
    for k, split in enumerate(splits):
        expected_a_to_b = score_held_out(
            files, scores, split.half_a, split.half_b, STANDARD
        )
        expected_b_to_a = score_held_out(
            files, scores, split.half_b, split.half_a, STANDARD
        )
        assert result.a_to_b[k] == pytest.approx(expected_a_to_b)
        assert result.b_to_a[k] == pytest.approx(expected_b_to_a)
    assert len(set(result.a_to_b)) > 1


@pytest.mark.parametrize("splits", ["1", "-2"], ids=["one", "negative"])
def test_run_main_rejects_too_few_splits(splits: str) -> None:
    with pytest.raises(SystemExit, match="Invalid --splits"):
        main(["--splits", splits])
