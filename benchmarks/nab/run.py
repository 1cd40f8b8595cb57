"""Run the anomaly detectors over the NAB corpus and print their NAB scores.

Usage::

    python -m benchmarks.nab.run [--data DIR] [--jobs 2] [--detectors NAME ...]
        [--set NAME=VALUE ...] [--splits 10] [--split-seed 0] [--output FILE]

Each detector is fitted on an empty history and then scores every file in
one streaming pass, so every score uses only its own row and earlier rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nab.scoring import (
    PROFILE_NAMES,
    FloatArray,
    NabFile,
    Profile,
    count_windows,
    load_corpus,
    load_profiles,
    normalise,
    optimise_threshold,
    raw_score,
)
from benchmarks.nab.splits import SplitScores, score_held_out, score_random_splits
from detectors.anomaly import make_detector
from detectors.errors import DataQualityWarning

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("/work/shared/data/nab")

# One fixed configuration per detector, used unchanged for every file.
NAB_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "robust_z": ("robust_z", {}),
    "ewma": ("ewma", {}),
    "cusum": ("cusum", {}),
    "seasonal_mad": ("seasonal_mad", {}),
    "isolation_forest": ("isolation_forest", {}),
    "robust_ensemble": ("robust_ensemble", {"cooldown": 2500}),
    "likelihood_ensemble": ("likelihood_ensemble", {}),
}


@dataclass(frozen=True, kw_only=True)
class FileRun:
    """Scores of one detector on one file, with the time it took."""

    detector: str
    file_name: str
    anomaly_scores: FloatArray
    flags: FloatArray
    seconds: float


def run_detector_on_file(task: tuple[str, NabFile, dict[str, Any]]) -> FileRun:
    """Stream one file through a fresh detector.

    ``task`` is the detector name, the file, and parameters that replace or
    add to the detector's entry in ``NAB_CONFIGS``.
    """
    name, nab_file, overrides = task
    type_name, params = NAB_CONFIGS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        started = time.perf_counter()
        detector = make_detector(type_name, **{**params, **overrides})
        detector.fit(nab_file.timestamps[:0], nab_file.values[:0])
        result = detector.score(nab_file.timestamps, nab_file.values)
        seconds = time.perf_counter() - started
    return FileRun(
        detector=name,
        file_name=nab_file.name,
        anomaly_scores=result.anomaly_score,
        flags=result.flag.astype(np.float64),
        seconds=seconds,
    )


def split_files(files: Sequence[NabFile]) -> tuple[list[int], list[int]]:
    """Split the corpus into two fixed halves.

    Within each category, files are taken in name order and alternate between
    half A (first, third, ...) and half B (second, fourth, ...).
    """
    half_a: list[int] = []
    half_b: list[int] = []
    position_in_category: dict[str, int] = {}
    for index, nab_file in enumerate(files):
        category = nab_file.name.split("/")[0]
        position = position_in_category.get(category, 0)
        position_in_category[category] = position + 1
        (half_a if position % 2 == 0 else half_b).append(index)

    return half_a, half_b


def score_detector(
    files: Sequence[NabFile], scores: Sequence[FloatArray], profile: Profile
) -> dict[str, float]:
    """Return the corpus score and the held-out scores of both split directions."""
    n_windows = count_windows(files)
    threshold, raw = optimise_threshold(files, scores, profile)
    result = {"threshold": threshold, "score": normalise(raw, n_windows, profile)}
    half_a, half_b = split_files(files)
    for label, tune, test in (("a_to_b", half_a, half_b), ("b_to_a", half_b, half_a)):
        result[f"held_out_{label}"] = score_held_out(files, scores, tune, test, profile)

    return result


def score_own_flags(
    files: Sequence[NabFile], flags: Sequence[FloatArray], profile: Profile
) -> dict[str, float]:
    """Return the score when the detector's own flags are the alerts.

    No threshold is tuned on the scored files, so the score of each half is
    held out with respect to the threshold, though not with respect to
    settings tuned on that half.
    """
    result: dict[str, float] = {}
    half_a, half_b = split_files(files)
    everything = list(range(len(files)))
    for label, indices in (("all", everything), ("half_a", half_a), ("half_b", half_b)):
        chosen = [files[i] for i in indices]
        raw = raw_score(chosen, [flags[i] for i in indices], 0.5, profile)
        result[label] = normalise(raw, count_windows(chosen), profile)

    return result


def count_outcomes(
    files: Sequence[NabFile], flags: Sequence[FloatArray]
) -> dict[str, int]:
    """Count the windows with and without a flag, and the flags outside every
    window, over the scored rows of each file."""
    detected = missed = false_alerts = 0
    for nab_file, file_flags in zip(files, flags, strict=True):
        flagged = np.flatnonzero(np.asarray(file_flags) > 0)
        flagged = flagged[flagged >= nab_file.probation_rows]
        inside = np.zeros(len(flagged), dtype=bool)
        for first, last in nab_file.windows:
            if last < nab_file.probation_rows:
                continue
            in_window = (flagged >= first) & (flagged <= last)
            inside |= in_window
            if in_window.any():
                detected += 1
            else:
                missed += 1
        false_alerts += int(np.count_nonzero(~inside))

    return {"detected": detected, "missed": missed, "false_alerts": false_alerts}


def describe_splits(split_scores: SplitScores) -> dict[str, Any]:
    """Return the held-out scores of random splits as a JSON-ready dict."""
    return {
        "seed": split_scores.seed,
        "splits": len(split_scores.a_to_b),
        "mean": split_scores.mean,
        "std": split_scores.std,
        "standard_error": split_scores.standard_error,
        "a_to_b": list(split_scores.a_to_b),
        "b_to_a": list(split_scores.b_to_a),
        "tuned_a": list(split_scores.tuned_a),
        "tuned_b": list(split_scores.tuned_b),
    }


def describe_machine() -> str:
    """Return the CPU count and model of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{multiprocessing.cpu_count()} CPUs, {model}"


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``NAME=VALUE`` and read VALUE as JSON, or as a string if it is
    not valid JSON."""
    name, separator, raw = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(
            f"Invalid parameter override {text!r}. Expected NAME=VALUE, e.g. "
            "z_floor=2.9."
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="NAB folder with data/, labels/ and config/ (default: %(default)s).",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="Worker processes (default: 2)."
    )
    parser.add_argument(
        "--detectors",
        nargs="+",
        default=list(NAB_CONFIGS),
        choices=list(NAB_CONFIGS),
        help="Detectors to run (default: all).",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="NAME=VALUE",
        action="append",
        type=parse_override,
        default=[],
        help=(
            "Replace one parameter of every chosen detector, VALUE read as "
            "JSON, e.g. --set z_floor=2.9 (may be repeated)."
        ),
    )
    parser.add_argument(
        "--splits",
        type=int,
        default=10,
        help=(
            "Number of random half splits, stratified by category, for the "
            "held-out standard score; 0 turns them off (default: %(default)s)."
        ),
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="Seed of the random half splits (default: %(default)s).",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="Write the scores and per-file timings as JSON to this file.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.splits == 1 or arguments.splits < 0:
        raise SystemExit(
            f"Invalid --splits {arguments.splits}. The standard deviation needs "
            "at least 2 splits, so pass 2 or more, or 0 to turn them off."
        )
    started = time.perf_counter()
    files = load_corpus(arguments.data)
    profiles = load_profiles(arguments.data / "config" / "profiles.json")
    by_size = sorted(files, key=lambda nab_file: -len(nab_file.values))
    overrides = dict(arguments.overrides)
    for name in arguments.detectors:
        type_name, params = NAB_CONFIGS[name]
        accepted = make_detector(type_name, **params).get_params()
        unknown = sorted(set(overrides) - set(accepted))
        if unknown:
            raise SystemExit(
                f"Invalid --set for detector {name!r}: it has no parameter "
                f"{', '.join(map(repr, unknown))}. Its parameters are "
                f"{', '.join(sorted(accepted))}."
            )
    tasks = [
        (name, nab_file, overrides)
        for name in arguments.detectors
        for nab_file in by_size
    ]
    with multiprocessing.Pool(arguments.jobs) as pool:
        runs = pool.map(run_detector_on_file, tasks, chunksize=1)

    report: dict[str, Any] = {
        "machine": describe_machine(),
        "files": len(files),
        "windows": count_windows(files),
        "detectors": {},
    }
    for name in arguments.detectors:
        by_file = {run.file_name: run for run in runs if run.detector == name}
        scores = [by_file[nab_file.name].anomaly_scores for nab_file in files]
        flags = [by_file[nab_file.name].flags for nab_file in files]
        seconds = [by_file[nab_file.name].seconds for nab_file in files]
        rows = sum(len(nab_file.values) for nab_file in files)
        entry: dict[str, Any] = {
            "config": {**NAB_CONFIGS[name][1], **overrides},
            "seconds_total": sum(seconds),
            "seconds_per_file_median": float(np.median(seconds)),
            "seconds_per_file_max": max(seconds),
            "microseconds_per_row": 1e6 * sum(seconds) / rows,
            "seconds_per_file": dict(
                zip((f.name for f in files), seconds, strict=True)
            ),
        }
        for profile_name in PROFILE_NAMES:
            entry[profile_name] = score_detector(files, scores, profiles[profile_name])
        entry["standard_own_flags"] = score_own_flags(
            files, flags, profiles["standard"]
        )
        entry["own_flags_outcomes"] = count_outcomes(files, flags)
        if arguments.splits > 0:
            entry["standard_random_splits"] = describe_splits(
                score_random_splits(
                    files,
                    scores,
                    profiles["standard"],
                    n_splits=arguments.splits,
                    seed=arguments.split_seed,
                )
            )
        report["detectors"][name] = entry
    report["wall_seconds"] = time.perf_counter() - started

    print_report(report)
    if arguments.output is not None:
        arguments.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['files']} files, {report['windows']} windows; "
        f"{report['machine']}; wall time {report['wall_seconds']:.1f} s"
    )
    print(
        "| detector | standard | reward_low_FP | reward_low_FN "
        "| standard held out A->B / B->A "
        "| standard held out, random splits mean / sd / se "
        "| standard at own flags all / A / B "
        "| CPU s total | us per row | windows missed | false alerts |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in report["detectors"].items():
        standard = entry["standard"]
        own = entry["standard_own_flags"]
        outcomes = entry["own_flags_outcomes"]
        splits = entry.get("standard_random_splits")
        random_held_out = "not run"
        if splits is not None:
            random_held_out = (
                f"{splits['mean']:.2f} / {splits['std']:.2f} / "
                f"{splits['standard_error']:.2f} ({splits['splits']} splits, "
                f"seed {splits['seed']})"
            )
        print(
            f"| {name} | {standard['score']:.1f} "
            f"| {entry['reward_low_FP_rate']['score']:.1f} "
            f"| {entry['reward_low_FN_rate']['score']:.1f} "
            f"| {standard['held_out_a_to_b']:.1f} / {standard['held_out_b_to_a']:.1f} "
            f"| {random_held_out} "
            f"| {own['all']:.1f} / {own['half_a']:.1f} / {own['half_b']:.1f} "
            f"| {entry['seconds_total']:.1f} | {entry['microseconds_per_row']:.1f} "
            f"| {outcomes['missed']} of {outcomes['detected'] + outcomes['missed']} "
            f"| {outcomes['false_alerts']} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
