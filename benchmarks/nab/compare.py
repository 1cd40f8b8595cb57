"""Compare NAB runs split by split on their random half splits.

Usage::

    python -m benchmarks.nab.compare BASELINE.json CANDIDATE.json [...]
        [--detector likelihood_ensemble]

Each file is the ``--output`` of ``benchmarks.nab.run``, and all runs must
use the same ``--splits`` and ``--split-seed``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.nab.splits import SplitScores, compare_paired, select_on_tuning_half


def load_split_scores(path: Path, detector: str) -> tuple[SplitScores, dict[str, Any]]:
    """Read the random-split scores and the configuration of one detector.

    Raises
    ------
    SystemExit
        If the file has no such detector or no random-split scores.
    """
    report = json.loads(path.read_text(encoding="utf-8"))
    entry = report["detectors"].get(detector)
    if entry is None:
        raise SystemExit(
            f"{path}: no results for detector {detector!r}. It contains "
            f"{', '.join(sorted(report['detectors']))}; pass one with --detector."
        )
    splits = entry.get("standard_random_splits")
    if splits is None:
        raise SystemExit(
            f"{path}: no random-split scores for {detector!r}. Rerun "
            "benchmarks.nab.run with --splits 10 or more."
        )

    scores = SplitScores(
        seed=splits["seed"],
        a_to_b=tuple(splits["a_to_b"]),
        b_to_a=tuple(splits["b_to_a"]),
        tuned_a=tuple(splits["tuned_a"]),
        tuned_b=tuple(splits["tuned_b"]),
    )
    return scores, entry


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="JSON output of the baseline run.")
    parser.add_argument(
        "candidates", type=Path, nargs="+", help="JSON outputs of the candidate runs."
    )
    parser.add_argument(
        "--detector",
        default="likelihood_ensemble",
        help="Detector to compare (default: %(default)s).",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    paths = [arguments.baseline, *arguments.candidates]
    loaded = [load_split_scores(path, arguments.detector) for path in paths]
    runs = [scores for scores, _ in loaded]
    baseline = runs[0]
    try:
        gains = [compare_paired(baseline, run) for run in runs[1:]]
        selected_mean, times_chosen = select_on_tuning_half(runs)
    except ValueError as error:
        raise SystemExit(str(error)) from error

    print(
        f"{len(baseline.a_to_b)} random splits, seed {baseline.seed}, "
        f"detector {arguments.detector}, standard profile"
    )
    print(
        "| run | µs per row | held out mean / sd | gain | split se | file se "
        "| directions won / lost | chosen on tuning half |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for index, (path, (scores, entry)) in enumerate(zip(paths, loaded, strict=True)):
        gain_text = "baseline | | | "
        if index > 0:
            gain = gains[index - 1]
            gain_text = (
                f"{gain.mean:+.2f} | {gain.split_standard_error:.2f} "
                f"| {gain.file_standard_error:.2f} "
                f"| {gain.directions_won} / {gain.directions_lost} of "
                f"{gain.n_directions}"
            )
        print(
            f"| {path.stem} | {entry['microseconds_per_row']:.1f} "
            f"| {scores.mean:.2f} / {scores.std:.2f} | {gain_text} "
            f"| {times_chosen[index]} |"
        )
    print(
        f"Held-out mean when the run is chosen on each tuning half: "
        f"{selected_mean:.2f}, against {baseline.mean:.2f} for the baseline."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
