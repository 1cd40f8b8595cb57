"""Benchmark one rule evaluation cycle against the numpy reference.

For each series count, the script generates the shared workload (N series of
one sample per minute over 7 days) and its rules (60% thresholds with
``for: 5m``, 10% slope over 1 day, 20% linear forecast one day ahead over 1
day, 10% ratio of two KPIs), loads the series into a ``DenseBlock``, compiles
the rules with ``BatchPlan`` and times full cycles: the batch evaluation plus
the alert lifecycle step of every alert that is active or becomes active. In
the same run it times the numpy reference on the same data, so the ratio
between them is measured under the same machine load.

Usage::

    python -m benchmarks.cycle.run --series 1000,10000,50000 --bench ../shared/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config.model import Config
from monitor.dense import DenseBlock
from monitor.evaluation import RuleEvaluator
from monitor.series import SeriesKey
from monitor.store import Store
from monitor.windows import WindowStore
from rules.batch import BatchPlan
from rules.expr import Expr, SeriesWindow, evaluate, parse
from rules.lifecycle import AlertState, Outcome, Timing, step
from rules.model import Location, RuleGroup, ThresholdRule

FOR_SECONDS = 300.0
TREE_SAMPLE_RULES = 200


def prepare(bench: Path, work: Path, series: int) -> tuple[Path, Path]:
    """Generate the workload and rules once per series count."""
    data = work / f"n{series}"
    rules = work / f"rules-n{series}"
    if not (data / "values.npy").exists():
        subprocess.run(
            [
                sys.executable,
                str(bench / "workload.py"),
                "--series",
                str(series),
                "--out",
                str(data),
                "--formats",
                "npy",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not (rules / "rules.json").exists():
        subprocess.run(
            [
                sys.executable,
                str(bench / "rules.py"),
                "--data",
                str(data),
                "--rules",
                str(series),
                "--out",
                str(rules),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return data, rules


def expressions(spec: dict[str, Any], kpis: list[str]) -> dict[str, tuple[str, float]]:
    """Translate the shared rule spec into krwatch expressions and `for`."""
    types = spec["types"]
    result: dict[str, tuple[str, float]] = {}
    for j, (k, t) in enumerate(
        zip(types["thr"]["kpi"], types["thr"]["threshold"], strict=True)
    ):
        result[f"thr{j}"] = (f'kpi("{kpis[k]}") > {t}', FOR_SECONDS)
    for j, (k, t) in enumerate(
        zip(types["deriv"]["kpi"], types["deriv"]["threshold"], strict=True)
    ):
        result[f"deriv{j}"] = (f'slope(kpi("{kpis[k]}"), 1d) < {t}', 0.0)
    for j, (k, t) in enumerate(
        zip(types["forecast"]["kpi"], types["forecast"]["threshold"], strict=True)
    ):
        result[f"forecast{j}"] = (
            f'predict_linear(kpi("{kpis[k]}"), 1d, 1d) < {t}',
            0.0,
        )
    ratio = types["ratio"]
    for j, (a, b, t) in enumerate(
        zip(ratio["a"], ratio["b"], ratio["threshold"], strict=True)
    ):
        result[f"ratio{j}"] = (f'kpi("{kpis[a]}") / on() kpi("{kpis[b]}") > {t}', 0.0)
    return result


class Cycle:
    """The batch evaluation plus the lifecycle of active alerts."""

    def __init__(self, plan: BatchPlan, timings: dict[str, Timing]) -> None:
        self.plan = plan
        self.timings = timings
        self.alerts: dict[tuple[str, tuple[tuple[str, str], ...]], AlertState] = {}

    def run(self, data_now: float, clock: float) -> int:
        result = self.plan.evaluate(data_now)
        seen = set()
        for rule, hits in result.holding.items():
            for labels, value in hits:
                key = (str(rule), labels)
                seen.add(key)
                state = self.alerts.get(key) or AlertState(
                    alert=str(rule), group="bench", labels=dict(labels)
                )
                self.alerts[key], _ = step(
                    state, Outcome.TRUE, clock, self.timings[str(rule)], value
                )
        for key in [k for k in self.alerts if k not in seen]:
            state, _ = step(
                self.alerts[key], Outcome.FALSE, clock, self.timings[key[0]]
            )
            if state.state == "inactive":
                del self.alerts[key]
            else:
                self.alerts[key] = state
        return len(self.alerts)


class BlockContext:
    def __init__(self, block: DenseBlock, now: float) -> None:
        self.now = now
        self.block = block

    def select(self, kpi: str, matchers: object) -> list[SeriesWindow]:
        row = self.block.rows[SeriesKey(kpi)]
        times, values = self.block.row_series(row)
        return [SeriesWindow(kpi=kpi, labels=(), timestamps=times, values=values)]

    def key_result(self, name: str) -> None:
        return None

    def anomaly_score(self, kpi: str, labels: object) -> float:
        return float("nan")


def time_tree(parsed: dict[str, Expr], block: DenseBlock, now: float) -> float:
    """Seconds per rule of the tree evaluator on a sample of the rules."""
    sample = list(parsed.items())[:: max(1, len(parsed) // TREE_SAMPLE_RULES)][
        :TREE_SAMPLE_RULES
    ]
    context = BlockContext(block, now)
    started = time.perf_counter()
    for _, expression in sample:
        evaluate(expression, context)
    return (time.perf_counter() - started) / len(sample)


def time_daemon_path(
    texts: dict[str, tuple[str, float]],
    parsed: dict[str, Expr],
    block: DenseBlock,
    end: float,
    rounds: int,
) -> list[float]:
    """Time ``RuleEvaluator.evaluate_group``, the daemon's own cycle.

    It adds what the batch cycle leaves out: per-rule bookkeeping, alert
    state persistence in SQLite and notifications into a no-op outbox.
    """
    with tempfile.TemporaryDirectory() as folder:
        config = Config(path=Path(folder) / "config.yaml")
        store = Store(Path(folder) / "krwatch.db")
        windows = WindowStore(window_seconds=float(block.capacity) * 60.0)
        windows.adopt_block("bench", block)
        here = Location(path=Path("bench.yaml"), line=1)
        rules = tuple(
            ThresholdRule(
                alert=name,
                location=here,
                expr=texts[name][0],
                expression=expression,
                for_=timedelta(seconds=texts[name][1]),
            )
            for name, expression in parsed.items()
        )
        group = RuleGroup(name="bench", location=here, rules=rules)
        evaluator = RuleEvaluator(
            config, store, windows, key_results=dict, enqueue=lambda c, n: None
        )
        evaluator.evaluate_group(group, now=end)
        durations = []
        for index in range(rounds):
            began = time.perf_counter()
            evaluator.evaluate_group(group, now=end + (index + 1) * 20.0)
            durations.append(time.perf_counter() - began)
        store.close()
    return durations


def measure(bench: Path, work: Path, series: int, rounds: int) -> dict[str, Any]:
    data, rules_dir = prepare(bench, work, series)
    meta = json.loads((data / "meta.json").read_text())
    spec = json.loads((rules_dir / "rules.json").read_text())
    reference = subprocess.run(
        [
            sys.executable,
            str(bench / "numpy_ref.py"),
            "--data",
            str(data),
            "--rules-json",
            str(rules_dir / "rules.json"),
            "--repeat",
            str(rounds),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    reference_cycle = json.loads(reference.stdout)["cycle"]["median_s"]

    matrix = np.load(data / "values.npy")
    n_series, n_samples = matrix.shape
    step_seconds = float(meta["step"])
    end = float(meta["end"])
    timestamps = end - step_seconds * np.arange(n_samples - 1, -1, -1)
    keys = [SeriesKey(name) for name in meta["kpis"]]
    block = DenseBlock(n_samples)
    block.load(timestamps, keys, matrix)
    del matrix

    texts = expressions(spec, meta["kpis"])
    started = time.perf_counter()
    parsed = {name: parse(text) for name, (text, _) in texts.items()}
    plan = BatchPlan(parsed, block)
    plan.evaluate(end)
    compile_seconds = time.perf_counter() - started
    timings = {
        name: Timing(for_seconds=for_seconds)
        for name, (_, for_seconds) in texts.items()
    }
    cycle = Cycle(plan, timings)

    durations = []
    for index in range(rounds):
        began = time.perf_counter()
        active = cycle.run(end, end + index * 20.0)
        durations.append(time.perf_counter() - began)
    tracemalloc.start()
    cycle.run(end, end + rounds * 20.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tree_per_rule = time_tree(parsed, block, end)
    daemon_durations = time_daemon_path(texts, parsed, block, end, rounds)
    median = statistics.median(durations)
    return {
        "series": n_series,
        "rules": len(texts),
        "not_compiled": len(plan.not_compiled),
        "samples_per_series": n_samples,
        "cycle_median_s": median,
        "cycle_runs_s": durations,
        "numpy_reference_cycle_median_s": reference_cycle,
        "ratio_to_numpy": median / reference_cycle,
        "compile_s": compile_seconds,
        "active_alerts": active,
        "window_bytes_per_series": block.nbytes / n_series,
        "cycle_peak_temporary_bytes": peak,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "daemon_cycle_median_s": statistics.median(daemon_durations),
        "daemon_cycle_runs_s": daemon_durations,
        "tree_evaluator_s_per_rule": tree_per_rule,
        "tree_evaluator_estimated_cycle_s": tree_per_rule * len(texts),
    }


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores, {model}, Python {python}, numpy {np.__version__}"


def _summary(size: dict[str, Any]) -> str:
    cycle_ms = size["cycle_median_s"] * 1000
    reference_ms = size["numpy_reference_cycle_median_s"] * 1000
    daemon_ms = size["daemon_cycle_median_s"] * 1000
    return (
        f"{size['series']:>6} series x {size['rules']:>6} rules: "
        f"cycle {cycle_ms:8.1f} ms, daemon cycle {daemon_ms:8.1f} ms, "
        f"numpy reference {reference_ms:7.1f} ms, "
        f"ratio {size['ratio_to_numpy']:5.1f}, "
        f"{size['window_bytes_per_series'] / 1000:.1f} KB per series, "
        f"peak temporaries {size['cycle_peak_temporary_bytes'] / 1e6:.1f} MB, "
        f"tree evaluator estimate {size['tree_evaluator_estimated_cycle_s']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--series", default="1000,10000,50000", help="Comma-separated series counts."
    )
    parser.add_argument(
        "--bench",
        type=Path,
        default=Path("../shared/bench"),
        help="Folder of workload.py, rules.py and numpy_ref.py.",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/krwatch-cycle-bench"),
        help="Folder for generated data.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="Timed cycles per size; the median is reported.",
    )
    parser.add_argument(
        "--json", type=Path, help="Write the results to this file as well."
    )
    args = parser.parse_args()
    results = {"machine": machine(), "sizes": []}
    for count in (int(part) for part in args.series.split(",")):
        # One process per size keeps ru_maxrss and caches of one size out of the next.
        outcome = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.cycle.run_one",
                str(args.bench),
                str(args.work),
                str(count),
                str(args.rounds),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        size = json.loads(outcome.stdout)
        results["sizes"].append(size)
        print(_summary(size), flush=True)
    print(results["machine"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
