"""The rule test file format as frozen dataclasses, read by the config reader."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from monitor.config.model import KPIEdgeConfig

KeyResultStatusName = Literal[
    "on_track", "at_risk", "off_track", "insufficient_data", "achieved", "missed"
]


@dataclass(frozen=True, kw_only=True)
class InputSeries:
    """One series of test input: a selector and its values per interval."""

    series: str
    values: str


@dataclass(frozen=True, kw_only=True)
class ExpectedAlert:
    """One firing alert that a check expects."""

    exp_labels: Mapping[str, str] = field(default_factory=dict)
    """Alert labels without ``alertname``: series labels and rule labels."""
    exp_annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertRuleCheck:
    """The firing alerts of one alert name at one time after the start."""

    eval_time: timedelta
    alertname: str
    exp_alerts: tuple[ExpectedAlert, ...] = ()


@dataclass(frozen=True, kw_only=True)
class KeyResultCheck:
    """The status, and optionally the progress, of one key result at one time."""

    eval_time: timedelta
    key_result: str
    exp_status: KeyResultStatusName
    exp_progress: float | None = None
    """Compared to within ``PROGRESS_TOLERANCE``."""


@dataclass(frozen=True, kw_only=True)
class InlineKPI:
    """A KPI defined in the test file; it needs no source."""

    name: str
    help: str = ""
    unit: str = ""
    stale_after: timedelta | None = None
    drives: tuple[KPIEdgeConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InlineKeyResult:
    """A key result defined in the test file, with default objective and owner."""

    name: str
    kpi: str
    measure: Literal["level", "cumulative"]
    direction: Literal["increase", "decrease"]
    baseline: float
    target: float
    labels: Mapping[str, str] = field(default_factory=dict)
    start: datetime | None = None
    due: datetime | None = None
    period: Literal["week", "month", "quarter"] | None = None
    objective: str = "rule_tests"
    owner: str = "rule_tests"


@dataclass(frozen=True, kw_only=True)
class RuleTestCase:
    """One independent test: input series from ``start`` and the checks on them."""

    name: str = ""
    interval: timedelta | None = None
    """Time between two values of an input series; defaults to the file's
    ``evaluation_interval``."""
    start: datetime | None = None
    """Time of the first value and of ``eval_time`` 0; defaults to
    1970-01-01T00:00:00Z."""
    input_series: tuple[InputSeries, ...] = ()
    alert_rule_test: tuple[AlertRuleCheck, ...] = ()
    key_result_test: tuple[KeyResultCheck, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RuleTestFile:
    """A rule test file: the rules under test, shared definitions and tests."""

    rule_files: tuple[str, ...]
    """Paths or globs, relative to the test file."""
    evaluation_interval: timedelta | None = None
    """Default interval of key results and rule groups without their own;
    defaults to the referenced config's, or 1m."""
    config: str | None = None
    """A main configuration file whose KPIs and key results the tests use,
    relative to the test file; its sources are not polled."""
    kpis: tuple[InlineKPI, ...] = ()
    key_results: tuple[InlineKeyResult, ...] = ()
    tests: tuple[RuleTestCase, ...] = ()
