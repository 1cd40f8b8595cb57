"""Parsed rule files: groups of rules as frozen, keyword-only dataclasses.

There are four rule kinds, and all of them share the alert lifecycle that
``RuleBase`` configures: ``ThresholdRule`` (``expr``), ``DependencyRule``
(``when`` and ``require``), ``ForecastRule`` (``key_results`` and
``attainment_below``) and ``AnomalyRule`` (``kpi`` and ``detector``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

NoDataPolicy = Literal["ok", "alerting", "keep_state"]
ErrorPolicy = Literal["keep_state", "alerting"]


@dataclass(frozen=True, kw_only=True)
class Location:
    """The file and line of a rule, for error messages."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, kw_only=True)
class RuleBase:
    """The name, lifecycle settings, labels and annotations of every rule kind."""

    alert: str
    location: Location
    for_: timedelta = timedelta(0)
    """Written ``for`` in YAML."""
    keep_firing_for: timedelta = timedelta(0)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    no_data: NoDataPolicy = "keep_state"
    on_error: ErrorPolicy = "keep_state"
    inhibit_when_upstream_firing: bool = False
    """Hold back the firing notification while an alert on a KPI that drives
    this rule's KPIs fires. It is sent if the alert still fires afterwards."""


@dataclass(frozen=True, kw_only=True)
class ThresholdRule(RuleBase):
    """A rule that fires for each element of its expression's result."""

    expr: str
    expression: Any = None
    """Parsed ``expr`` (a ``rules.expr`` tree), set by the loader."""

    @property
    def kind(self) -> str:
        """Rule kind name as the loader and the API spell it."""
        return "threshold"

    @property
    def condition(self) -> tuple[object, ...]:
        """The fields that decide when the rule holds.

        Alerts of a rule whose condition changed start over on a reload;
        ``for``, ``keep_firing_for``, the policies, the labels and the
        annotations may change without resetting them. Every rule kind has
        this property.
        """
        return ("threshold", self.expr)


@dataclass(frozen=True, kw_only=True)
class DependencyRule(RuleBase):
    """A rule that fires where ``when`` holds but ``require`` does not.

    ``require`` may be met up to ``lag`` after ``when`` started holding for a
    label set, so an upstream move may take that long to reach the
    downstream KPI. Elements of the two results are paired as in vector
    matching: by equal label sets, or by the labels in ``match_on``, or by all
    labels except those in ``match_ignoring``.
    """

    when: str
    require: str
    lag: timedelta = timedelta(0)
    match_on: tuple[str, ...] | None = None
    match_ignoring: tuple[str, ...] = ()
    when_expression: Any = None
    """Parsed ``when``, set by the loader."""
    require_expression: Any = None
    """Parsed ``require``, set by the loader."""

    @property
    def kind(self) -> str:
        return "dependency"

    @property
    def condition(self) -> tuple[object, ...]:
        return (
            "dependency",
            self.when,
            self.require,
            self.lag.total_seconds(),
            self.match_on,
            self.match_ignoring,
        )


@dataclass(frozen=True, kw_only=True)
class ForecastRule(RuleBase):
    """A rule that fires while key results are forecast to miss their target."""

    key_results: tuple[str, ...]
    attainment_below: float
    clear_margin: float = 0.1
    """The alert clears only when the probability rises above
    ``attainment_below + clear_margin``."""

    @property
    def kind(self) -> str:
        return "forecast"

    @property
    def condition(self) -> tuple[object, ...]:
        return ("forecast", self.key_results, self.attainment_below, self.clear_margin)


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """The ``detector`` of an anomaly rule: a registered type and its parameters."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Keyword parameters of the detector class, as written in YAML."""


@dataclass(frozen=True, kw_only=True)
class AnomalyRule(RuleBase):
    """A rule that fires for each series of a KPI that its detector flags.

    ``match`` selects series by equal label values and ``match_re`` by
    regular expressions that must match the whole value.
    """

    kpi: str
    detector: DetectorSpec
    match: Mapping[str, str] = field(default_factory=dict)
    match_re: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "anomaly"

    @property
    def condition(self) -> tuple[object, ...]:
        params = json.dumps(dict(self.detector.params), sort_keys=True, default=str)
        return (
            "anomaly",
            self.kpi,
            tuple(sorted(self.match.items())),
            tuple(sorted(self.match_re.items())),
            self.detector.type,
            params,
        )


Rule = ThresholdRule | DependencyRule | ForecastRule | AnomalyRule


@dataclass(frozen=True, kw_only=True)
class RuleGroup:
    """Rules evaluated together at one interval."""

    name: str
    location: Location
    interval: timedelta | None = None
    rules: tuple[Rule, ...] = ()
