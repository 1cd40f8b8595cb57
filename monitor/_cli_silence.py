"""The ``krwatch silence`` subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from exporters.silences import add_silence_commands, run_silence_command
from monitor.errors import ConfigError


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = add_silence_commands(subparsers)
    parser.add_argument(
        "-c", "--config", required=True, type=Path, help="Config file of the daemon."
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from monitor.config import load_storage

    try:
        config = load_storage(args.config)
    except ConfigError as error:
        for problem in error.problems:
            sys.stderr.write(f"{problem}\n")
        return 1
    return run_silence_command(args, config)
