"""The ``krwatch`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType

from monitor.errors import ConfigError, KrwatchError

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

COMMAND_MODULES: tuple[str, ...] = (
    "monitor._cli_dashboard",
    "monitor._cli_rules",
    "monitor._cli_silence",
)
"""Modules that add subcommands: each has ``add_commands(subparsers)``, and
every parser it adds sets ``handler`` (a function of the parsed arguments
returning the exit status) with ``set_defaults``."""


def _version() -> str:
    try:
        return metadata.version("krwatch")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def problem_count(count: int) -> str:
    """Return ``count`` with the noun "problem" in the right number."""
    return f"{count} problem" if count == 1 else f"{count} problems"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="krwatch",
        description="Watch business KPIs and OKR key results.",
    )
    parser.add_argument("--version", action="version", version=f"krwatch {_version()}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="Lowest level of log lines to write to stderr (default: info).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Run the daemon.")
    run.add_argument("-c", "--config", required=True, type=Path, help="Config file.")
    check = commands.add_parser(
        "check", help="Validate a config file and its rule files; exit 0 or 1."
    )
    check.add_argument("-c", "--config", required=True, type=Path, help="Config file.")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command == "check":
        return _check(args.config)
    if args.command == "run":
        return _run(args.config)
    return int(args.handler(args))


def _check(path: Path) -> int:
    from monitor.config import check_files

    problems = check_files(path)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {problem_count(len(problems))} found.", file=sys.stderr)
        return 1

    print(f"{path}: configuration and rule files are valid.")
    return 0


def _run(path: Path) -> int:
    from monitor.daemon import Daemon

    try:
        daemon = Daemon(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(
            f"{path}: {problem_count(len(error.problems))} found; not started.",
            file=sys.stderr,
        )
        return 1
    except KrwatchError as error:
        print(f"krwatch could not start: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"krwatch could not start: {error}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s, stopping", signal.Signals(signum).name)
        stop.set()

    def request_reload(signum: int, frame: FrameType | None) -> None:
        logger.info("Received SIGHUP, reloading the configuration")
        threading.Thread(target=daemon.reload, name="krwatch-reload").start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    daemon.start()
    stop.wait()
    daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
