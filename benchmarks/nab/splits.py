"""Random half splits of the NAB corpus, stratified by category, and the
held-out score over them.

One fixed split of 41 files is a noisy base for choosing settings, because a
half has about 43 windows and one window found or lost moves its score by
about 2 points. Averaging the held-out score over many random splits reduces
the part of that noise that comes from which files land in which half. It
does not reduce the noise of the corpus itself, and it does not make a
figure held out when the settings were chosen with the whole corpus in view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.nab.scoring import (
    FloatArray,
    NabFile,
    Profile,
    count_windows,
    normalise,
    optimise_threshold,
    raw_score,
)


@dataclass(frozen=True, kw_only=True)
class HalfSplit:
    """Two disjoint halves of the corpus, as sorted indices into its files."""

    half_a: tuple[int, ...]
    half_b: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class SplitScores:
    """Held-out standard scores over random half splits.

    ``a_to_b[k]`` is the score of half B of split ``k`` at the threshold tuned
    on its half A, and ``b_to_a[k]`` the reverse. ``tuned_a[k]`` is the score
    of half A at that same threshold, the best score half A can reach with
    one threshold, and ``tuned_b[k]`` the same for half B.
    """

    seed: int
    a_to_b: tuple[float, ...]
    b_to_a: tuple[float, ...]
    tuned_a: tuple[float, ...]
    tuned_b: tuple[float, ...]

    @property
    def directions(self) -> FloatArray:
        """Scores of all ``2 * n_splits`` directions, split by split."""
        return np.column_stack([self.a_to_b, self.b_to_a]).ravel()

    @property
    def mean(self) -> float:
        """Mean held-out score over all directions."""
        return float(np.mean(self.directions))

    @property
    def std(self) -> float:
        """Sample standard deviation of the held-out score over all directions."""
        return _sample_std(self.directions)

    @property
    def standard_error(self) -> float:
        """Standard error of ``mean``, from the spread of the per-split means.

        The two directions of one split share their files, so the mean of
        each split, not each direction, is treated as one observation.
        """
        per_split = (np.asarray(self.a_to_b) + np.asarray(self.b_to_a)) / 2.0
        return _sample_std(per_split) / math.sqrt(len(per_split))


def category_of(nab_file: NabFile) -> str:
    """Return the category of a file, the folder part of its name."""
    return nab_file.name.split("/")[0]


def draw_stratified_splits(
    files: Sequence[NabFile], n_splits: int, seed: int
) -> list[HalfSplit]:
    """Draw random half splits of ``files``, stratified by category.

    Each category is shuffled and cut in two, so every category has the same
    number of files in both halves, give or take one. The categories with an
    odd number of files give their extra file to half A and half B in turn
    (in an order drawn at random), so the halves differ in size by at most
    one file. The same ``seed`` gives the same splits.

    Parameters
    ----------
    files : sequence of NabFile
        The corpus.
    n_splits : int
        Number of splits to draw, at least 1.
    seed : int
        Seed of the random generator.

    Raises
    ------
    ValueError
        If ``n_splits`` is below 1.
    """
    if n_splits < 1:
        raise ValueError(
            f"Invalid number of splits {n_splits!r}. Draw at least 1 split."
        )

    by_category: dict[str, list[int]] = {}
    for index, nab_file in enumerate(files):
        by_category.setdefault(category_of(nab_file), []).append(index)
    categories = sorted(by_category)
    generator = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        odd = [name for name in categories if len(by_category[name]) % 2 == 1]
        extra_to_a = {
            name: position % 2 == 0
            for position, name in enumerate(generator.permutation(odd).tolist())
        }
        half_a: list[int] = []
        half_b: list[int] = []
        for name in categories:
            members = generator.permutation(by_category[name]).tolist()
            cut = len(members) // 2 + (1 if extra_to_a.get(name, False) else 0)
            half_a.extend(members[:cut])
            half_b.extend(members[cut:])
        splits.append(
            HalfSplit(half_a=tuple(sorted(half_a)), half_b=tuple(sorted(half_b)))
        )

    return splits


def score_held_out(
    files: Sequence[NabFile],
    scores: Sequence[FloatArray],
    tune: Sequence[int],
    test: Sequence[int],
    profile: Profile,
) -> float:
    """Return the normalised score of the ``test`` files at the threshold
    that maximises the score of the ``tune`` files."""
    held_out, _ = _score_both_halves(files, scores, tune, test, profile)
    return held_out


def _score_both_halves(
    files: Sequence[NabFile],
    scores: Sequence[FloatArray],
    tune: Sequence[int],
    test: Sequence[int],
    profile: Profile,
) -> tuple[float, float]:
    """Return the normalised scores of the ``test`` and the ``tune`` files at
    the threshold tuned on the ``tune`` files."""
    tune_files = [files[i] for i in tune]
    test_files = [files[i] for i in test]
    threshold, tuned_raw = optimise_threshold(
        tune_files, [scores[i] for i in tune], profile
    )
    raw = raw_score(test_files, [scores[i] for i in test], threshold, profile)
    return (
        normalise(raw, count_windows(test_files), profile),
        normalise(tuned_raw, count_windows(tune_files), profile),
    )


def score_random_splits(
    files: Sequence[NabFile],
    scores: Sequence[FloatArray],
    profile: Profile,
    *,
    n_splits: int,
    seed: int,
) -> SplitScores:
    """Score both directions of ``n_splits`` random stratified half splits.

    The per-file anomaly scores are reused for every split, so only the
    threshold search and the scoring run again.
    """
    a_to_b, b_to_a, tuned_a, tuned_b = [], [], [], []
    for split in draw_stratified_splits(files, n_splits, seed):
        held_out_b, tuned_on_a = _score_both_halves(
            files, scores, split.half_a, split.half_b, profile
        )
        held_out_a, tuned_on_b = _score_both_halves(
            files, scores, split.half_b, split.half_a, profile
        )
        a_to_b.append(held_out_b)
        b_to_a.append(held_out_a)
        tuned_a.append(tuned_on_a)
        tuned_b.append(tuned_on_b)

    return SplitScores(
        seed=seed,
        a_to_b=tuple(a_to_b),
        b_to_a=tuple(b_to_a),
        tuned_a=tuple(tuned_a),
        tuned_b=tuple(tuned_b),
    )


def _sample_std(values: FloatArray) -> float:
    if len(values) < 2:
        return math.nan

    return float(np.std(values, ddof=1))


@dataclass(frozen=True, kw_only=True)
class PairedGain:
    """Gain of a candidate over a baseline on the same random splits.

    ``mean`` is the mean difference of the held-out scores over all
    directions. ``split_standard_error`` is its standard error from the
    spread of the per-split mean differences, which measures only how much
    the figure depends on the partition of this corpus. ``file_standard_error``
    estimates how much the gain on the whole corpus would vary with the files
    drawn: the gains on two random halves of the same split differ by chance
    alone, and half their difference has the variance of the whole-corpus
    gain when files are independent.
    """

    mean: float
    split_standard_error: float
    file_standard_error: float
    directions_won: int
    directions_lost: int
    n_directions: int


def compare_paired(baseline: SplitScores, candidate: SplitScores) -> PairedGain:
    """Compare the held-out scores of two runs split by split.

    Raises
    ------
    ValueError
        If the two runs did not use the same seed and number of splits.
    """
    _check_same_splits([baseline, candidate])
    gain_on_b = np.asarray(candidate.a_to_b) - np.asarray(baseline.a_to_b)
    gain_on_a = np.asarray(candidate.b_to_a) - np.asarray(baseline.b_to_a)
    per_split = (gain_on_a + gain_on_b) / 2.0
    half_difference = (gain_on_a - gain_on_b) / 2.0
    both = np.concatenate([gain_on_a, gain_on_b])
    return PairedGain(
        mean=float(np.mean(both)),
        split_standard_error=_sample_std(per_split) / math.sqrt(len(per_split)),
        file_standard_error=float(np.sqrt(np.mean(half_difference**2))),
        directions_won=int(np.count_nonzero(both > 0)),
        directions_lost=int(np.count_nonzero(both < 0)),
        n_directions=len(both),
    )


def select_on_tuning_half(runs: Sequence[SplitScores]) -> tuple[float, list[int]]:
    """Choose a run on each tuning half and score the choice on the other half.

    In each direction the run with the highest score on the tuning half is
    chosen (the first of equal runs), so the choice among the runs is held
    out as well as the threshold.

    Returns
    -------
    mean_held_out : float
        Mean held-out score of the chosen runs over all directions.
    times_chosen : list of int
        How many directions chose each run, in the order of ``runs``.
    """
    _check_same_splits(runs)
    tuned = np.array([[*run.tuned_a, *run.tuned_b] for run in runs])
    held_out = np.array([[*run.a_to_b, *run.b_to_a] for run in runs])
    chosen = np.argmax(tuned, axis=0)
    picked = held_out[chosen, np.arange(held_out.shape[1])]
    times_chosen = np.bincount(chosen, minlength=len(runs)).tolist()
    return float(np.mean(picked)), times_chosen


def _check_same_splits(runs: Sequence[SplitScores]) -> None:
    shapes = {(run.seed, len(run.a_to_b)) for run in runs}
    if len(shapes) > 1:
        described = ", ".join(
            f"seed {seed} with {count} splits" for seed, count in sorted(shapes)
        )
        raise ValueError(
            f"The runs used different splits ({described}). Rerun them with the "
            "same --splits and --split-seed."
        )
