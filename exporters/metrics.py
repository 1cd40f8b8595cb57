"""Prometheus metrics of krwatch, declared in one place.

Counters and histograms that code updates as events happen live in
``Instruments``. Values that mirror current state (KPIs, key results, alerts,
source health) come from ``StateCollector``, which reads a snapshot at scrape
time, so the series of a removed KPI or key result disappear with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

KEY_RESULT_STATUSES = (
    "on_track",
    "at_risk",
    "off_track",
    "insufficient_data",
    "achieved",
    "missed",
)
ALERT_STATES = ("pending", "firing")
RESERVED_LABELS = frozenset({"kpi", "key_result", "objective", "owner"})
POLL_BUCKETS_SECONDS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Instruments:
    """Event counters and histograms, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.poll_duration = Histogram(
            "krwatch_source_poll_duration_seconds",
            "Time one poll of a source took.",
            ["source"],
            buckets=POLL_BUCKETS_SECONDS,
            registry=registry,
        )
        self.poll_errors = Counter(
            "krwatch_source_errors_total",
            "Failed polls and rejected samples by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.samples = Counter(
            "krwatch_source_samples_total",
            "Samples accepted from a source.",
            ["source"],
            registry=registry,
        )
        self.rule_evaluations = Counter(
            "krwatch_rule_group_evaluations_total",
            "Evaluation cycles of a rule group.",
            ["group"],
            registry=registry,
        )
        self.rule_failures = Counter(
            "krwatch_rule_evaluation_failures_total",
            "Rule evaluations that failed, by group.",
            ["group"],
            registry=registry,
        )
        self.rule_duration = Histogram(
            "krwatch_rule_group_duration_seconds",
            "Time one evaluation cycle of a rule group took.",
            ["group"],
            buckets=POLL_BUCKETS_SECONDS,
            registry=registry,
        )
        self.key_result_duration = Histogram(
            "krwatch_key_result_evaluation_duration_seconds",
            "Time one evaluation of all key results took.",
            buckets=POLL_BUCKETS_SECONDS,
            registry=registry,
        )


@dataclass(frozen=True, kw_only=True)
class KpiPoint:
    kpi: str
    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True, kw_only=True)
class KeyResultPoint:
    name: str
    objective: str
    kpi: str
    owner: str
    status: str
    values: Mapping[str, float]
    """progress, expected_progress, current, baseline, target, forecast,
    lower_80, upper_80, lower_95, upper_95, attainment_probability,
    shortfall, required_run_rate, due."""


@dataclass(frozen=True, kw_only=True)
class AlertPoint:
    alert: str
    state: str
    labels: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class SourcePoint:
    name: str
    type: str
    up: bool
    last_success: float | None


@dataclass(frozen=True, kw_only=True)
class GroupPoint:
    name: str
    last_duration_seconds: float
    last_evaluation: float


@dataclass(frozen=True, kw_only=True)
class DetectorPoint:
    """The newest score and expected band of one series by one anomaly rule."""

    kpi: str
    rule: str
    labels: Mapping[str, str]
    score: float
    lower: float
    upper: float


@dataclass(frozen=True, kw_only=True)
class MetricsSnapshot:
    """Current state, as the collector exports it."""

    kpis: Sequence[KpiPoint] = ()
    key_results: Sequence[KeyResultPoint] = ()
    alerts: Sequence[AlertPoint] = ()
    sources: Sequence[SourcePoint] = ()
    groups: Sequence[GroupPoint] = ()
    detectors: Sequence[DetectorPoint] = ()
    reload_successful: bool = True
    reload_timestamp: float = 0.0
    extra: Mapping[str, float] = field(default_factory=dict)


def _series_labels(kpi: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Prefix KPI labels that clash with ours with ``exported_``."""
    result = {"kpi": kpi}
    for name, value in labels.items():
        result[f"exported_{name}" if name in RESERVED_LABELS else name] = value
    return result


def _gauge(name: str, documentation: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class StateCollector(Collector):
    """Export the current state that ``snapshot()`` returns at scrape time."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        yield from self._kpis(snapshot.kpis)
        yield from self._key_results(snapshot.key_results)
        yield from self._alerts(snapshot.alerts)
        yield from self._sources(snapshot.sources)
        yield from self._groups(snapshot.groups)
        yield from self._detectors(snapshot.detectors)
        reload_ok = _gauge(
            "krwatch_config_last_reload_successful",
            "Whether the last configuration reload succeeded (1) or failed (0).",
            [],
        )
        reload_ok.add_metric([], 1.0 if snapshot.reload_successful else 0.0)
        yield reload_ok
        reload_time = _gauge(
            "krwatch_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration load.",
            [],
        )
        reload_time.add_metric([], snapshot.reload_timestamp)
        yield reload_time

    @staticmethod
    def _kpis(points: Sequence[KpiPoint]) -> Iterator[Metric]:
        # Series of one KPI may carry labels that others lack, so each point
        # is added with its own label names.
        value = GaugeMetricFamily("krwatch_kpi_value", "Latest value of a KPI series.")
        stamp = GaugeMetricFamily(
            "krwatch_kpi_last_sample_timestamp_seconds",
            "Time of the latest sample of a KPI series.",
        )
        for point in points:
            labels = _series_labels(point.kpi, point.labels)
            value.samples.append(_sample(value.name, labels, point.value))
            stamp.samples.append(_sample(stamp.name, labels, point.timestamp))
        yield value
        yield stamp

    @staticmethod
    def _key_results(points: Sequence[KeyResultPoint]) -> Iterator[Metric]:
        names = ["key_result", "objective", "kpi", "owner"]
        simple = {
            "progress": "Progress from baseline to target; 1 means reached.",
            "expected_progress": "Progress the linear glide path expects by now.",
            "current": "Current value: the latest value, or the sum booked so far.",
            "baseline": "Value at the start of the period.",
            "target": "Value to reach by the due date.",
            "forecast": "Median forecast of the value at the due date.",
            "attainment_probability": "Probability of meeting the target.",
            "shortfall": "Target minus forecast in the key result's direction.",
            "required_run_rate": "Change or sum per day needed from now on.",
        }
        families = {
            key: _gauge(f"krwatch_key_result_{key}", text, names)
            for key, text in simple.items()
        }
        due = _gauge(
            "krwatch_key_result_due_timestamp_seconds",
            "Due date of the key result's current period.",
            names,
        )
        lower = _gauge(
            "krwatch_key_result_forecast_lower",
            "Lower bound of the forecast's prediction interval.",
            [*names, "interval"],
        )
        upper = _gauge(
            "krwatch_key_result_forecast_upper",
            "Upper bound of the forecast's prediction interval.",
            [*names, "interval"],
        )
        status = _gauge(
            "krwatch_key_result_status",
            "1 for the key result's current status, 0 for the others.",
            [*names, "status"],
        )
        for point in points:
            base = [point.name, point.objective, point.kpi, point.owner]
            for key, family in families.items():
                number = point.values.get(key, math.nan)
                if math.isfinite(number):
                    family.add_metric(base, number)
            due.add_metric(base, point.values.get("due", math.nan))
            for interval in ("80", "95"):
                low = point.values.get(f"lower_{interval}", math.nan)
                high = point.values.get(f"upper_{interval}", math.nan)
                if math.isfinite(low) and math.isfinite(high):
                    lower.add_metric([*base, interval], low)
                    upper.add_metric([*base, interval], high)
            for name in KEY_RESULT_STATUSES:
                status.add_metric([*base, name], 1.0 if point.status == name else 0.0)
        yield from families.values()
        yield due
        yield lower
        yield upper
        yield status

    @staticmethod
    def _alerts(points: Sequence[AlertPoint]) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "krwatch_alerts", "Pending and firing alerts, like Prometheus' ALERTS."
        )
        for point in points:
            labels = {
                name: value
                for name, value in point.labels.items()
                if name != "alertstate"
            }
            labels["alertname"] = point.alert
            labels["alertstate"] = point.state
            family.samples.append(_sample(family.name, labels, 1.0))
        yield family

    @staticmethod
    def _sources(points: Sequence[SourcePoint]) -> Iterator[Metric]:
        up = _gauge(
            "krwatch_source_up",
            "Whether the last poll of a source succeeded.",
            ["source", "type"],
        )
        success = _gauge(
            "krwatch_source_last_success_timestamp_seconds",
            "Time of the last successful poll of a source.",
            ["source", "type"],
        )
        for point in points:
            up.add_metric([point.name, point.type], 1.0 if point.up else 0.0)
            if point.last_success is not None:
                success.add_metric([point.name, point.type], point.last_success)
        yield up
        yield success

    @staticmethod
    def _groups(points: Sequence[GroupPoint]) -> Iterator[Metric]:
        duration = _gauge(
            "krwatch_rule_group_last_duration_seconds",
            "Time the last evaluation cycle of a rule group took.",
            ["group"],
        )
        last = _gauge(
            "krwatch_rule_group_last_evaluation_timestamp_seconds",
            "Time of the last evaluation cycle of a rule group.",
            ["group"],
        )
        for point in points:
            duration.add_metric([point.name], point.last_duration_seconds)
            last.add_metric([point.name], point.last_evaluation)
        yield duration
        yield last

    @staticmethod
    def _detectors(points: Sequence[DetectorPoint]) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "krwatch_detector_score",
            "Largest anomaly score of the samples a rule's detector scored last; "
            "the unit depends on the detector type.",
        )
        lower = GaugeMetricFamily(
            "krwatch_detector_band_lower",
            "Lower bound of the band the detector expects the KPI value in.",
        )
        upper = GaugeMetricFamily(
            "krwatch_detector_band_upper",
            "Upper bound of the band the detector expects the KPI value in.",
        )
        for point in points:
            labels = _series_labels(point.kpi, point.labels)
            if "rule" in labels:
                labels["exported_rule"] = labels.pop("rule")
            labels["rule"] = point.rule
            for family, number in (
                (score, point.score),
                (lower, point.lower),
                (upper, point.upper),
            ):
                if math.isfinite(number):
                    family.samples.append(_sample(family.name, labels, number))
        yield score
        yield lower
        yield upper


def _sample(name: str, labels: Mapping[str, str], value: float) -> Sample:
    return Sample(name, dict(labels), value)
