"""Our implementation of the Numenta Anomaly Benchmark (NAB) scoring rules.

The rules follow NAB v1.1 as published with the corpus: labelled anomaly
windows, a scaled sigmoid reward for the earliest detection in each window,
a penalty for every detection outside the windows that decays with the
distance after the preceding window, a probationary period that is not
scored, one threshold per detector and profile chosen to maximise the corpus
score, and normalisation between the null and the perfect detector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750
# A threshold above every possible anomaly score, meaning "never alert".
NEVER_ALERT_THRESHOLD = 1.1
# Beyond this relative position the scaled sigmoid is exactly -1.
SIGMOID_CUTOFF = 3.0

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass(frozen=True, kw_only=True)
class Profile:
    """One NAB cost matrix."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass(frozen=True, kw_only=True)
class NabFile:
    """One data file with its labels converted to row indices.

    ``windows`` contains inclusive ``(first_row, last_row)`` pairs in time order.
    """

    name: str
    timestamps: FloatArray
    values: FloatArray
    windows: tuple[tuple[int, int], ...]

    @property
    def probation_rows(self) -> int:
        """Rows at the start of the file that are not scored."""
        return probation_rows(len(self.values))


def probation_rows(n_rows: int) -> int:
    """Return the length of the probationary period of a file of ``n_rows``."""
    return min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_MAX_ROWS)


def scaled_sigmoid(x: FloatArray | float) -> FloatArray:
    """Return ``2 / (1 + exp(5x)) - 1``, which is -1 for every ``x > 3``."""
    position = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > SIGMOID_CUTOFF, -1.0, value)


def load_profiles(path: Path) -> dict[str, Profile]:
    """Read NAB's ``profiles.json`` into profiles by name."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    profiles = {}
    for name, entry in raw.items():
        weights = entry["CostMatrix"]
        profiles[name] = Profile(
            name=name,
            tp_weight=float(weights["tpWeight"]),
            fp_weight=float(weights["fpWeight"]),
            fn_weight=float(weights["fnWeight"]),
        )

    return profiles


def load_corpus(data_dir: Path) -> list[NabFile]:
    """Read every labelled CSV file under ``data_dir/data``, sorted by name.

    Raises
    ------
    ValueError
        If a window bound matches no row of its file.
    """
    labels = json.loads(
        (data_dir / "labels" / "combined_windows.json").read_text(encoding="utf-8")
    )
    files = []
    for name in sorted(labels):
        frame = pd.read_csv(data_dir / "data" / name)
        stamps = pd.to_datetime(frame["timestamp"]).to_numpy("datetime64[ns]")
        windows = tuple(
            (_first_row(stamps, start, name), _first_row(stamps, end, name))
            for start, end in labels[name]
        )
        files.append(
            NabFile(
                name=name,
                timestamps=stamps.astype(np.int64) / 1e9,
                values=frame["value"].to_numpy(np.float64),
                windows=windows,
            )
        )

    return files


def _first_row(stamps: npt.NDArray[np.datetime64], bound: str, name: str) -> int:
    matches = np.flatnonzero(stamps == np.datetime64(pd.Timestamp(bound)))
    if len(matches) == 0:
        raise ValueError(
            f"Window bound {bound!r} of {name} matches no row timestamp. Check "
            "that the labels belong to this data file."
        )

    return int(matches[0])


def sweep_values(
    n_rows: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[FloatArray, IntArray]:
    """Compute the value of a detection on each row and each row's window.

    Returns
    -------
    values : ndarray of float
        Reward inside a window, penalty (0 or less) outside.
    window_ids : ndarray of int
        Index of the window that contains the row, or -1.
    """
    rows = np.arange(n_rows)
    values = np.full(n_rows, -profile.fp_weight)
    window_ids = np.full(n_rows, -1, dtype=np.int64)
    for index, (first, last) in enumerate(windows):
        width = last - first + 1
        inside = slice(first, last + 1)
        position = -(last - rows[inside] + 1) / width
        values[inside] = (
            profile.tp_weight * scaled_sigmoid(position) / float(scaled_sigmoid(-1.0))
        )
        window_ids[inside] = index
        following_first = windows[index + 1][0] if index + 1 < len(windows) else n_rows
        after = slice(last + 1, following_first)
        if width > 1:
            position = (rows[after] - last) / (width - 1)
            values[after] = profile.fp_weight * scaled_sigmoid(position)
        else:
            values[after] = -profile.fp_weight

    return values, window_ids


@dataclass(frozen=True, kw_only=True)
class _ScoredRows:
    scores: FloatArray
    values: FloatArray
    window_ids: IntArray
    n_windows: int


def _gather_rows(
    files: Sequence[NabFile], anomaly_scores: Sequence[FloatArray], profile: Profile
) -> _ScoredRows:
    """Pool the scored rows of all files, with window ids unique across files."""
    scores, values, window_ids = [], [], []
    n_windows = 0
    for nab_file, file_scores in zip(files, anomaly_scores, strict=True):
        if len(file_scores) != len(nab_file.values):
            raise ValueError(
                f"Got {len(file_scores)} anomaly scores for {nab_file.name}, which "
                f"has {len(nab_file.values)} rows. Score every row."
            )
        row_values, row_windows = sweep_values(
            len(nab_file.values), nab_file.windows, profile
        )
        scored = slice(nab_file.probation_rows, None)
        ids = row_windows[scored]
        present = np.unique(ids[ids >= 0])
        renumbered = np.full(max(1, len(nab_file.windows)), -1, dtype=np.int64)
        renumbered[present] = n_windows + np.arange(len(present))
        n_windows += len(present)
        scores.append(np.asarray(file_scores, dtype=np.float64)[scored])
        values.append(row_values[scored])
        window_ids.append(np.where(ids >= 0, renumbered[np.maximum(ids, 0)], -1))

    return _ScoredRows(
        scores=np.concatenate(scores) if scores else np.empty(0),
        values=np.concatenate(values) if values else np.empty(0),
        window_ids=(
            np.concatenate(window_ids) if window_ids else np.empty(0, dtype=np.int64)
        ),
        n_windows=n_windows,
    )


def raw_score(
    files: Sequence[NabFile],
    anomaly_scores: Sequence[FloatArray],
    threshold: float,
    profile: Profile,
) -> float:
    """Return the corpus raw score S(threshold): alerts are rows with a score
    at or above the threshold, outside the probationary period."""
    rows = _gather_rows(files, anomaly_scores, profile)
    alert = rows.scores >= threshold
    total = float(np.sum(rows.values[alert & (rows.window_ids < 0)]))
    best = np.full(rows.n_windows, -profile.fn_weight)
    in_window = alert & (rows.window_ids >= 0)
    np.maximum.at(best, rows.window_ids[in_window], rows.values[in_window])
    return total + float(np.sum(best))


def optimise_threshold(
    files: Sequence[NabFile], anomaly_scores: Sequence[FloatArray], profile: Profile
) -> tuple[float, float]:
    """Find the threshold that maximises the corpus raw score.

    The candidates are 1.1 (never alert) and every distinct score of the
    scored rows. Ties go to the highest threshold.

    Returns
    -------
    threshold, raw_score : float
    """
    rows = _gather_rows(files, anomaly_scores, profile)
    order = np.argsort(-rows.scores, kind="stable")
    scores = rows.scores[order]
    values = rows.values[order]
    window_ids = rows.window_ids[order]
    best_in_window = np.full(rows.n_windows, -profile.fn_weight)
    total = -profile.fn_weight * rows.n_windows
    best_threshold, best_total = NEVER_ALERT_THRESHOLD, total
    n_rows = len(scores)
    for index in range(n_rows):
        window = int(window_ids[index])
        value = float(values[index])
        if window < 0:
            total += value
        elif value > best_in_window[window]:
            total += value - best_in_window[window]
            best_in_window[window] = value
        last_of_run = index + 1 == n_rows or scores[index + 1] != scores[index]
        if last_of_run and total > best_total:
            best_threshold, best_total = float(scores[index]), total

    return best_threshold, best_total


def count_windows(files: Sequence[NabFile]) -> int:
    """Count the windows that have at least one scored row."""
    count = 0
    for nab_file in files:
        count += sum(
            1 for _, last in nab_file.windows if last >= nab_file.probation_rows
        )

    return count


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """Scale a raw corpus score so that null is 0 and perfect is 100."""
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null)
