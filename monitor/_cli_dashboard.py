"""The ``krwatch dashboard`` subcommand: write a Grafana dashboard for a config."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from monitor.cli import problem_count
from monitor.errors import ConfigError

logger = logging.getLogger(__name__)


def add_commands(subparsers: Any) -> None:
    """Add ``dashboard`` to the ``krwatch`` subcommands."""
    parser = subparsers.add_parser(
        "dashboard",
        help="Write a Grafana dashboard JSON for the configured KPIs and key results.",
        description=(
            "Generate a Grafana dashboard (classic JSON model) with panels for "
            "every key result and KPI of the config, the alerts and krwatch's "
            "own health. Its queries use the data source chosen in the "
            "dashboard's ${datasource} variable."
        ),
    )
    parser.add_argument("-c", "--config", required=True, type=Path, help="Config file.")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="File to write the dashboard JSON to (default: standard output).",
    )
    parser.add_argument(
        "--title", default="krwatch", help="Dashboard title (default: krwatch)."
    )
    parser.add_argument(
        "--uid",
        default="krwatch",
        help="Dashboard uid; an import replaces the dashboard with this uid "
        "(default: krwatch).",
    )
    parser.set_defaults(handler=write_dashboard)


def write_dashboard(args: argparse.Namespace) -> int:
    """Generate the dashboard for ``args.config``; returns the exit status."""
    from exporters.dashboard import build_dashboard
    from monitor.config import load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        for problem in error.problems:
            sys.stderr.write(f"{problem}\n")
        sys.stderr.write(
            f"{args.config}: {problem_count(len(error.problems))} found; "
            "no dashboard written.\n"
        )
        return 1

    dashboard = build_dashboard(config, title=args.title, uid=args.uid)
    text = json.dumps(dashboard, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0

    try:
        args.output.write_text(text)
    except OSError as error:
        sys.stderr.write(f"Writing the dashboard to {args.output} failed: {error}\n")
        return 1
    logger.info(
        "Wrote a dashboard with %d panels for %d key results and %d KPIs to %s",
        len(dashboard["panels"]),
        len(config.key_results),
        len(config.kpis),
        args.output,
    )
    return 0
