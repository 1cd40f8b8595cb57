"""Rule tooling subcommands: ``krwatch graph``, ``test rules`` and ``backtest``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.cli import problem_count
from monitor.durations import DurationError, parse_duration
from monitor.errors import ConfigError, KrwatchError

if TYPE_CHECKING:
    from monitor.config.model import Config
    from rules.model import RuleGroup

logger = logging.getLogger(__name__)


def add_commands(subparsers: Any) -> None:
    """Register ``graph``, ``test rules`` and ``backtest`` on ``subparsers``."""
    graph = subparsers.add_parser(
        "graph", help="Print the KPI dependency graph with its key results."
    )
    graph.add_argument("-c", "--config", required=True, type=Path, help="Config file.")
    graph.add_argument(
        "--format",
        choices=["mermaid", "dot"],
        default="mermaid",
        help="Output syntax: a Mermaid flowchart or Graphviz dot (default: mermaid).",
    )
    graph.set_defaults(handler=_graph)

    test = subparsers.add_parser("test", help="Run unit tests.")
    kinds = test.add_subparsers(dest="test_kind", required=True)
    rules = kinds.add_parser(
        "rules", help="Run rule test files; exit 0 when every check passes, else 1."
    )
    rules.add_argument("files", nargs="+", type=Path, help="Rule test files.")
    rules.set_defaults(handler=_test_rules)

    backtest = subparsers.add_parser(
        "backtest",
        help="Replay history through the rules and print each alert's timeline.",
    )
    backtest.add_argument(
        "-c", "--config", required=True, type=Path, help="Config file."
    )
    backtest.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_timestamp,
        help="Start of the replay, ISO 8601; a time without offset is UTC.",
    )
    backtest.add_argument(
        "--to",
        dest="end",
        required=True,
        type=_timestamp,
        help="End of the replay, ISO 8601; a time without offset is UTC.",
    )
    backtest.add_argument(
        "--data",
        choices=["store", "csv"],
        default="store",
        help="Replay the samples of the SQLite store, or read the csv sources "
        "with their own timestamps (default: store).",
    )
    backtest.add_argument(
        "--interval",
        type=_duration,
        default=None,
        help="Evaluate key results and every rule group at this interval, "
        "such as 5m, instead of the configured ones; faster on long ranges, "
        "but for and keep_firing_for then advance in steps of it.",
    )
    backtest.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="Output format (default: table).",
    )
    backtest.set_defaults(handler=_backtest)


def _duration(text: str) -> timedelta:
    try:
        interval = parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if interval <= timedelta(0):
        raise argparse.ArgumentTypeError(
            f"Invalid interval {text!r}; write a positive duration such as 5m."
        )
    return interval


def _with_interval(
    config: Config, groups: Sequence[RuleGroup], interval: timedelta
) -> tuple[Config, tuple[RuleGroup, ...]]:
    """Return the config and groups with every evaluation interval replaced."""
    evaluation = dataclasses.replace(config.evaluation, interval=interval)
    config = dataclasses.replace(config, evaluation=evaluation)
    return config, tuple(
        dataclasses.replace(group, interval=interval) for group in groups
    )


def _timestamp(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Invalid time {text!r}; write ISO 8601, such as 2025-01-06 or "
            "2025-01-06T12:00:00Z."
        ) from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _quiet_alert_log() -> None:
    # Replays log every state change at INFO; the report lists them instead.
    logging.getLogger("monitor.evaluation").setLevel(logging.WARNING)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _report_problems(path: Path, problems: list[str], what: str) -> int:
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    sys.stderr.write(f"{path}: {problem_count(len(problems))} found; {what}\n")
    return 1


def _graph(args: argparse.Namespace) -> int:
    from monitor.config import load_config
    from rules.graph import KPIGraph

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return _report_problems(args.config, error.problems, "no graph printed.")

    graph = KPIGraph.from_config(config)
    _write(graph.to_dot() if args.format == "dot" else graph.to_mermaid())
    return 0


def _test_rules(args: argparse.Namespace) -> int:
    from rules.testing import run_test_file

    _quiet_alert_log()
    failed_files = 0
    for path in args.files:
        result = run_test_file(path)
        if result.problems:
            failed_files += 1
            _report_problems(path, result.problems, "the tests did not run.")
            continue

        for failure in result.failures:
            _write(f"FAILED {failure}\n\n")
        passed = result.checks - len(result.failures)
        verdict = "SUCCESS" if result.passed else "FAILED"
        _write(f"{path}: {verdict}, {passed} of {result.checks} checks passed.\n")
        if not result.passed:
            failed_files += 1
    return 1 if failed_files else 0


def _backtest(args: argparse.Namespace) -> int:
    from monitor.config import load_config
    from rules import backtest
    from rules.loader import load_rule_files

    if args.end <= args.start:
        sys.stderr.write("--to must be after --from; swap the two times.\n")
        return 1

    try:
        config = load_config(args.config)
        groups = load_rule_files(config)
    except ConfigError as error:
        return _report_problems(args.config, error.problems, "no backtest run.")

    if args.interval is not None:
        config, groups = _with_interval(config, groups, args.interval)
    _quiet_alert_log()
    history = config.storage.window.total_seconds()
    try:
        samples = backtest.load_samples(
            config, args.data, args.start - history, args.end
        )
    except (KrwatchError, backtest.BacktestError, OSError) as error:
        sys.stderr.write(f"krwatch backtest failed: {error}\n")
        return 1

    if not samples:
        sys.stderr.write(
            f"krwatch backtest: no samples of {args.data!r} between "
            f"{backtest.format_time(args.start - history)} and "
            f"{backtest.format_time(args.end)}; check --from, --to and --data.\n"
        )
        return 1

    logger.info(
        "Replaying %d samples through %d rule groups", len(samples), len(groups)
    )
    bar = backtest.ProgressBar(args.start, args.end)
    try:
        replay = backtest.run_backtest(
            config, groups, samples, start=args.start, end=args.end, progress=bar.update
        )
    finally:
        bar.finish()
    timelines = list(replay.timelines.values())
    replay.close()
    summaries = backtest.summarize(timelines, groups, args.end)
    if args.format == "json":
        report = backtest.report_json(timelines, summaries)
        report["from"] = backtest.format_time(args.start)
        report["to"] = backtest.format_time(args.end)
        _write(json.dumps(report, indent=2) + "\n")
    else:
        _write(backtest.report_table(timelines, summaries))
    return 0
