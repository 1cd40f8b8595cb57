"""Unit tests for rules: YAML test files run through the real evaluation cycle.

``run_test_file`` reads a test file in the spirit of ``promtool test rules``
(``rule_files``, ``evaluation_interval``, ``tests`` with ``input_series``,
``alert_rule_test`` and ``key_result_test``), replays each test's input
through ``rules.backtest.Replay`` and returns every failed check with the
expected and actual text. ``docs/rule-tests.md`` describes the format.
"""

from __future__ import annotations

from rules.testing._runner import (
    PROGRESS_TOLERANCE,
    CheckFailure,
    FileResult,
    run_test_file,
)
from rules.testing._series import NotationError, expand_values, parse_series

__all__ = [
    "PROGRESS_TOLERANCE",
    "CheckFailure",
    "FileResult",
    "NotationError",
    "expand_values",
    "parse_series",
    "run_test_file",
]
