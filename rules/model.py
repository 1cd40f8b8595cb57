"""Parsed rule files: groups of rules as frozen, keyword-only dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

NoDataPolicy = Literal["ok", "alerting", "keep_state"]
ErrorPolicy = Literal["keep_state", "alerting"]


@dataclass(frozen=True, kw_only=True)
class Location:
    """Where a rule was written, for error messages."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, kw_only=True)
class RuleBase:
    alert: str
    location: Location
    for_: timedelta = timedelta(0)
    """Written ``for`` in YAML."""
    keep_firing_for: timedelta = timedelta(0)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    no_data: NoDataPolicy = "keep_state"
    on_error: ErrorPolicy = "keep_state"


@dataclass(frozen=True, kw_only=True)
class ThresholdRule(RuleBase):
    expr: str
    expression: Any = None
    """Parsed ``expr`` (a ``rules.expr`` tree), set by the loader."""


@dataclass(frozen=True, kw_only=True)
class ForecastRule(RuleBase):
    key_results: tuple[str, ...]
    attainment_below: float
    clear_margin: float = 0.1
    """The alert clears only when the probability rises above
    ``attainment_below + clear_margin``."""


Rule = ThresholdRule | ForecastRule


@dataclass(frozen=True, kw_only=True)
class RuleGroup:
    name: str
    location: Location
    interval: timedelta | None = None
    rules: tuple[Rule, ...] = ()
