"""Parsed configuration: frozen, keyword-only dataclasses.

The loader in this package turns YAML into these classes; raw dicts never
leave it. Type-specific settings of sources, KPI queries and receivers are
dataclasses declared by each plug-in module and stored in ``settings`` or
``query``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from monitor.secrets import Secret


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    listen: str = "127.0.0.1:9464"
    external_url: str | None = None
    api_token: Secret | None = None

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def base_url(self) -> str:
        return self.external_url or f"http://{self.listen}"


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    path: Path = Path("krwatch.db")
    retention: timedelta = timedelta(days=400)
    window: timedelta = timedelta(days=90)


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    interval: timedelta = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    name: str
    type: str
    interval: timedelta = timedelta(minutes=1)
    timeout: timedelta = timedelta(seconds=10)
    settings: object = None
    """Instance of the source type's settings dataclass."""


@dataclass(frozen=True, kw_only=True)
class KPIEdgeConfig:
    """One ``drives`` edge: a change of this KPI moves ``kpi`` after ``lag``."""

    kpi: str
    lag: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class KPIConfig:
    name: str
    source: str
    help: str = ""
    unit: str = ""
    stale_after: timedelta | None = None
    query: object = None
    """Instance of the source type's query dataclass."""
    drives: tuple[KPIEdgeConfig, ...] = ()
    """Downstream KPIs; the edges form the KPI dependency graph."""


@dataclass(frozen=True, kw_only=True)
class KeyResultConfig:
    name: str
    kpi: str
    objective: str
    owner: str
    measure: Literal["level", "cumulative"]
    direction: Literal["increase", "decrease"]
    baseline: float
    target: float
    labels: Mapping[str, str] = field(default_factory=dict)
    start: datetime | None = None
    due: datetime | None = None
    period: Literal["week", "month", "quarter"] | None = None
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ObjectiveConfig:
    name: str
    owner: str = ""
    description: str = ""
    key_results: tuple[KeyResultConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ReceiverConfig:
    name: str
    type: str
    settings: object = None
    """Instance of the receiver type's settings dataclass."""


@dataclass(frozen=True, kw_only=True)
class RouteConfig:
    """One node of the notification route tree.

    Grouping settings left as ``None`` are inherited from the parent route.
    On the root route they take the defaults of ``exporters.routing``:
    group_wait 30s, group_interval 5m, repeat_interval 4h, send_resolved
    true and no group_by.
    """

    receiver: str
    match: Mapping[str, str] = field(default_factory=dict)
    match_re: Mapping[str, str] = field(default_factory=dict)
    continue_matching: bool = False
    """Written ``continue`` in YAML."""
    routes: tuple[RouteConfig, ...] = ()
    group_by: tuple[str, ...] | None = None
    """Label names whose values form the group key; ``("...",)`` groups by
    every label, so each alert is its own group."""
    group_wait: timedelta | None = None
    """Wait before the first notification of a new group is sent."""
    group_interval: timedelta | None = None
    """Wait before a group that was already notified is sent again with new
    state changes."""
    repeat_interval: timedelta | None = None
    """Wait before firing alerts of a notified group are sent again."""
    send_resolved: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    """The main configuration file; relative paths in it resolve against its
    folder."""
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    sources: tuple[SourceConfig, ...] = ()
    kpis: tuple[KPIConfig, ...] = ()
    objectives: tuple[ObjectiveConfig, ...] = ()
    receivers: tuple[ReceiverConfig, ...] = ()
    route: RouteConfig | None = None
    rule_files: tuple[str, ...] = ()

    @property
    def key_results(self) -> tuple[KeyResultConfig, ...]:
        return tuple(
            kr for objective in self.objectives for kr in objective.key_results
        )

    def resolve(self, path: str | Path) -> Path:
        """Return ``path`` resolved against the folder of the config file."""
        candidate = Path(path)
        if candidate.is_absolute():
            return candidate
        return self.path.parent / candidate
