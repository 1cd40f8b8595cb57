"""The evaluation cycle: rules to outcomes, outcomes to alert state changes.

Each cycle of a rule group evaluates its rules against the in-memory
windows and the latest key result statuses, and steps every alert through
the lifecycle. The new alert state and the notifications it causes are
written in one store transaction. ``monitor._rule_kinds`` evaluates each
rule kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from exporters import outbox
from exporters.notification import Notification
from monitor._batch_rules import BatchRules
from monitor._rule_kinds import (
    DetectorBank,
    DetectorReading,
    RuleOutcome,
    alert_labels,
    evaluate_anomaly,
    evaluate_dependency,
    evaluate_forecast,
    evaluate_threshold,
    series_labels_of,
)
from monitor.config.model import Config
from monitor.exprcontext import CycleContext
from monitor.keyresults import KeyResultStatus
from monitor.series import Labels
from monitor.store import Store, StoredAlert
from monitor.windows import WindowStore
from rules import graph as kpi_graph
from rules import templates
from rules.lifecycle import (
    FIRING,
    INACTIVE,
    AlertState,
    Outcome,
    Timing,
    Transition,
    fingerprint,
    step,
)
from rules.model import (
    AnomalyRule,
    DependencyRule,
    ForecastRule,
    Rule,
    RuleGroup,
    ThresholdRule,
)

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3
"""Poll intervals without a new sample after which a series is stale."""

FORECAST_CONFIRMATIONS = 2
"""Consecutive evaluations below the threshold before a forecast rule fires."""

TRIGGERS_META_KEY = "rules.dependency_triggers"
"""Store metadata key of the times at which dependency triggers started."""

RULE_DIGEST_KEY = "rule"
"""Key in an alert's ``extra`` of the digest of the rule condition it came from."""

RuleKey = tuple[str, str]
"""(group name, alert name) of one rule."""

__all__ = [
    "FORECAST_CONFIRMATIONS",
    "STALE_INTERVALS",
    "DetectorReading",
    "GroupReport",
    "RuleEvaluator",
    "RuleOutcome",
    "rule_digest",
    "stale_after_seconds",
    "timing_of",
]


@dataclass(frozen=True, kw_only=True)
class GroupReport:
    """Summary of one group cycle, for metrics."""

    group: str
    duration_seconds: float
    failed_rules: int
    evaluated_at: float


def stale_after_seconds(config: Config) -> dict[str, float]:
    """Return each KPI's staleness limit; the default is three poll intervals."""
    intervals = {s.name: s.interval.total_seconds() for s in config.sources}
    limits = {}
    for kpi in config.kpis:
        if kpi.stale_after is not None:
            limits[kpi.name] = kpi.stale_after.total_seconds()
        else:
            limits[kpi.name] = STALE_INTERVALS * intervals.get(kpi.source, 60.0)
    return limits


def timing_of(rule: Rule) -> Timing:
    """Return the lifecycle settings of ``rule``."""
    confirmations = FORECAST_CONFIRMATIONS if isinstance(rule, ForecastRule) else 1
    return Timing(
        for_seconds=rule.for_.total_seconds(),
        keep_firing_for_seconds=rule.keep_firing_for.total_seconds(),
        no_data=rule.no_data,
        on_error=rule.on_error,
        confirmations=confirmations,
    )


def rule_digest(rule: Rule) -> str:
    """Return a stable hash of the rule's condition.

    Alerts remember the digest of their rule, so a reload or a restart with a
    changed condition starts them over, and an unchanged rule keeps them.
    """
    text = json.dumps(list(rule.condition), default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RuleEvaluator:
    """Owns the alert states and evaluates rule groups.

    Parameters
    ----------
    config : Config
    store : Store
    windows : WindowStore
    key_results : callable
        Returns the latest key result statuses by name.
    enqueue : callable
        ``enqueue(connection, notification)`` writes a notification to the
        outbox inside the given transaction.
    release : callable, optional
        ``release(connection, fingerprints)`` sends the held-back firing
        notifications of alerts that were inhibited and still fire; defaults
        to ``exporters.outbox.release_inhibited``.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        windows: WindowStore,
        key_results: Callable[[], Mapping[str, KeyResultStatus]],
        enqueue: Callable[[object, Notification], None],
        release: Callable[..., object] = outbox.release_inhibited,
        failing_kpis: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.config = config
        self.failing_kpis = failing_kpis
        self._alerts_by_rule: dict[tuple[str, str], dict[str, AlertState]] | None = None
        self._digests: dict[int, tuple[Rule, Timing, str]] = {}
        self.release = release
        self.store = store
        self.windows = windows
        self.key_results = key_results
        self.enqueue = enqueue
        self._lock = threading.Lock()
        self.alerts: dict[str, AlertState] = {}
        self.reports: dict[str, GroupReport] = {}
        self.stale_after = stale_after_seconds(config)
        self.detectors = DetectorBank()
        self.batches = BatchRules(windows, self.stale_after)
        self._readings: dict[RuleKey, list[DetectorReading]] = {}
        self._triggers: dict[tuple[str, str, str], dict[str, float]] = {}
        self._rules: dict[RuleKey, Rule] = {}
        self._restore()

    def _restore(self) -> None:
        for stored in self.store.load_alerts():
            extra = dict(stored.extra)
            consecutive = extra.pop("consecutive_true", 0)
            self.alerts[stored.fingerprint] = AlertState(
                alert=stored.alert,
                group=stored.group_name,
                labels=stored.labels,
                state=stored.state,
                active_at=stored.active_at,
                fired_at=stored.fired_at,
                keep_firing_until=stored.keep_firing_until,
                last_value=stored.last_value,
                last_evaluated=stored.last_evaluated,
                notified=stored.notified,
                consecutive_true=int(consecutive),  # type: ignore[call-overload]
                extra=extra,
            )
        if self.alerts:
            logger.info("Restored %d alert states from the store", len(self.alerts))
        self._triggers = _load_triggers(self.store.meta_get(TRIGGERS_META_KEY))

    # Reading state for metrics and expressions.

    def detector_readings(self) -> list[DetectorReading]:
        """Return the newest reading of every anomaly rule and series."""
        with self._lock:
            return [r for readings in self._readings.values() for r in readings]

    def _anomaly_scores(self) -> dict[tuple[str, Labels], float]:
        scores: dict[tuple[str, Labels], float] = {}
        for readings in self._readings.values():
            _merge_scores(scores, readings)
        return scores

    # The cycle.

    def evaluate_group(self, group: RuleGroup, now: float | None = None) -> GroupReport:
        """Evaluate every rule of ``group`` once and commit the changes.

        Anomaly rules go first, so that ``anomaly_score`` in the group's other
        rules reads the scores of this cycle.
        """
        started = time.monotonic()
        now = time.time() if now is None else now
        statuses = self.key_results()
        failed = 0
        changes = _Changes()
        with self._lock:
            scores = self._anomaly_scores()
            context = CycleContext(
                now=now,
                windows=self.windows,
                key_results=statuses,
                stale_after=self.stale_after,
                anomaly_scores=scores,
            )
            triggers_before = {k: dict(v) for k, v in self._triggers.items()}
            ordered = sorted(
                group.rules, key=lambda rule: not isinstance(rule, AnomalyRule)
            )
            batched = self._batch_outcomes(group, now)
            self._alerts_by_rule = None
            failing = self.failing_kpis()
            graph = kpi_graph.graph_of(self.config) if failing else None
            for rule in ordered:
                self._rules[(group.name, rule.alert)] = rule
                if graph is not None and failing & set(
                    kpi_graph.rule_kpis(rule, graph)
                ):
                    # The source alert stands for the failure, so the rule's own
                    # alerts follow their no-data policy instead of resolving.
                    outcome = RuleOutcome(results={}, default=Outcome.NO_DATA)
                else:
                    outcome = batched.get(rule.alert) or self._evaluate_rule(
                        group, rule, context, statuses
                    )
                if isinstance(rule, AnomalyRule):
                    _merge_scores(scores, self._readings.get((group.name, rule.alert)))
                if outcome.default is Outcome.ERROR and not outcome.results:
                    failed += 1
                if (
                    outcome.results
                    or self._own_alerts(group, rule)
                    or (outcome.rule_has_no_data and rule.no_data == "alerting")
                ):
                    self._step_rule(group, rule, outcome, now, changes)
            self._release_inhibited(changes)
            self._commit(changes)
            if self._triggers != triggers_before:
                self.store.meta_set(TRIGGERS_META_KEY, _dump_triggers(self._triggers))
        report = GroupReport(
            group=group.name,
            duration_seconds=time.monotonic() - started,
            failed_rules=failed,
            evaluated_at=now,
        )
        self.reports[group.name] = report
        return report

    def _batch_outcomes(self, group: RuleGroup, now: float) -> dict[str, RuleOutcome]:
        """Evaluate the group's batch-compilable threshold rules at once."""
        try:
            return self.batches.outcomes(group, now)
        except Exception:
            logger.exception(
                "Batch evaluation of group %s failed; its rules run one by one",
                group.name,
            )
            return {}

    def _evaluate_rule(
        self,
        group: RuleGroup,
        rule: Rule,
        context: CycleContext,
        statuses: Mapping[str, KeyResultStatus],
    ) -> RuleOutcome:
        try:
            if isinstance(rule, ThresholdRule):
                return evaluate_threshold(rule, context)
            if isinstance(rule, DependencyRule):
                return self._evaluate_dependency(group, rule, context)
            if isinstance(rule, AnomalyRule):
                return self._evaluate_anomaly(group, rule, context)
            return evaluate_forecast(rule, statuses, self._is_firing(rule))
        except Exception:
            logger.exception(
                "Evaluating rule %s (%s) failed", rule.alert, rule.location
            )
            return RuleOutcome(results={}, default=Outcome.ERROR)

    def _evaluate_dependency(
        self, group: RuleGroup, rule: DependencyRule, context: CycleContext
    ) -> RuleOutcome:
        key = (group.name, rule.alert, rule_digest(rule))
        outcome, started = evaluate_dependency(
            rule, context, self._triggers.get(key, {})
        )
        if started:
            self._triggers[key] = started
        else:
            self._triggers.pop(key, None)
        return outcome

    def _evaluate_anomaly(
        self, group: RuleGroup, rule: AnomalyRule, context: CycleContext
    ) -> RuleOutcome:
        key = (group.name, rule.alert, rule_digest(rule))
        outcome, readings = evaluate_anomaly(rule, context, self.detectors, key)
        self._readings[(group.name, rule.alert)] = readings
        return outcome

    def _is_firing(self, rule: Rule) -> Callable[[Labels], bool]:
        def is_firing(labels: Labels) -> bool:
            current = self.alerts.get(fingerprint(rule.alert, dict(labels)))
            return current is not None and current.state == FIRING

        return is_firing

    def _own_alerts(self, group: RuleGroup, rule: Rule) -> dict[str, AlertState]:
        """Return the alerts of one rule from the index built for this cycle."""
        if self._alerts_by_rule is None:
            index: dict[tuple[str, str], dict[str, AlertState]] = {}
            for key, state in self.alerts.items():
                index.setdefault((state.group, state.alert), {})[key] = state
            self._alerts_by_rule = index
        return self._alerts_by_rule.get((group.name, rule.alert), {})

    def _timing_and_digest(self, rule: Rule) -> tuple[Timing, str]:
        """Return the rule's timing and digest, computed once per rule object."""
        cached = self._digests.get(id(rule))
        if cached is None or cached[0] is not rule:
            cached = (rule, timing_of(rule), rule_digest(rule))
            self._digests[id(rule)] = cached
        return cached[1], cached[2]

    def _step_rule(
        self,
        group: RuleGroup,
        rule: Rule,
        outcome: RuleOutcome,
        now: float,
        changes: _Changes,
    ) -> None:
        timing, digest = self._timing_and_digest(rule)
        results = dict(outcome.results)
        own = self._own_alerts(group, rule)
        if outcome.rule_has_no_data and not own and rule.no_data == "alerting":
            # Nothing to attach the missing data to, so one alert without
            # series labels stands for the whole rule.
            results[alert_labels(rule, ())] = (Outcome.NO_DATA, None)

        seen: set[str] = set()
        for labels, (result, value) in results.items():
            key = fingerprint(rule.alert, dict(labels))
            seen.add(key)
            state = own.get(key)
            if state is None or state.extra.get(RULE_DIGEST_KEY, digest) != digest:
                state = AlertState(
                    alert=rule.alert,
                    group=group.name,
                    labels=dict(labels),
                    extra={RULE_DIGEST_KEY: digest},
                )
            self._apply(rule, state, result, value, now, timing, outcome, changes)

        for key, state in own.items():
            if key in seen:
                continue
            if outcome.missing is not None:
                result = outcome.missing(state.labels)
            else:
                result = outcome.default
            self._apply(rule, state, result, None, now, timing, outcome, changes)

    def _apply(
        self,
        rule: Rule,
        state: AlertState,
        result: Outcome,
        value: float | None,
        now: float,
        timing: Timing,
        outcome: RuleOutcome,
        changes: _Changes,
    ) -> None:
        new_state, transition = step(state, result, now, timing, value)
        key = state.fingerprint
        if transition is not None:
            status = outcome.key_results.get(tuple(sorted(state.labels.items())))
            notification = self._notification(
                rule, state, new_state, transition, now, status
            )
            changes.notifications.append(notification)
            if notification.inhibited:
                causes = notification.annotations[kpi_graph.ROOT_CAUSE_ANNOTATION]
                extra = {**new_state.extra, kpi_graph.INHIBITED_BY_KEY: causes}
                new_state = replace(new_state, extra=extra)
        if new_state.state == INACTIVE:
            if key in self.alerts:
                del self.alerts[key]
                changes.removed.append(key)
            return

        self.alerts[key] = new_state
        changes.changed.append(new_state)

    def _notification(
        self,
        rule: Rule | None,
        before: AlertState,
        after: AlertState,
        transition: Transition,
        now: float,
        status: KeyResultStatus | None,
    ) -> Notification:
        firing = transition is Transition.FIRED
        source = after if firing else before
        active_at = source.active_at if source.active_at is not None else now
        value = after.last_value if after.last_value is not None else before.last_value
        kr_context = status.context() if status is not None else None
        kpi_context = None
        if rule is not None:
            kpi_context = kpi_graph.notification_kpi(
                kpi_graph.graph_of(self.config), rule, after.labels
            )
        annotations = templates.render_annotations(
            rule.annotations if rule is not None else {},
            alert=before.alert,
            value=value,
            labels=dict(after.labels),
            key_result=kr_context,
            kpi=kpi_context,
        )
        fired_at = source.fired_at
        notification = Notification(
            alert=before.alert,
            fingerprint=before.fingerprint,
            state="firing" if firing else "resolved",
            labels=dict(after.labels),
            annotations=annotations,
            value=value,
            active_at=_datetime(active_at),
            fired_at=_datetime(fired_at) if fired_at is not None else None,
            resolved_at=None if firing else _datetime(now),
            generator_url=f"{self.config.server.base_url}/api/v1/rules#{before.alert}",
            key_result=kr_context,
            kpi=self._kpi_context(rule, before),
        )
        return kpi_graph.link_notification(
            notification,
            config=self.config,
            rule=rule,
            alerts=self.alerts.values(),
            rules=self._rules,
        )

    def _release_inhibited(self, changes: _Changes) -> None:
        """Release inhibited alerts whose upstream alerts no longer fire."""
        released = kpi_graph.inhibited_to_release(
            config=self.config, alerts=self.alerts.values(), rules=self._rules
        )
        for key in released:
            state = self.alerts[key]
            extra = dict(state.extra)
            extra.pop(kpi_graph.INHIBITED_BY_KEY, None)
            self.alerts[key] = replace(state, extra=extra)
            changes.changed.append(self.alerts[key])
        changes.released.extend(released)

    def _kpi_context(
        self, rule: Rule | None, state: AlertState
    ) -> dict[str, object] | None:
        """Return the KPI and detector figures that an anomaly notification shows."""
        if not isinstance(rule, AnomalyRule):
            return None

        context: dict[str, object] = {"name": rule.kpi, "detector": rule.detector.type}
        series = series_labels_of(rule, state.labels)
        for reading in self._readings.get((state.group, rule.alert), ()):
            if reading.labels == series:
                context.update(
                    labels=dict(reading.labels),
                    score=reading.score,
                    band_lower=reading.lower,
                    band_upper=reading.upper,
                )
        return context

    def _commit(self, changes: _Changes) -> None:
        if not (changes.changed or changes.removed or changes.notifications):
            return

        with self.store.transaction() as connection:
            self.store.delete_alerts(connection, changes.removed)
            self.store.save_alerts(connection, [_stored(s) for s in changes.changed])
            for notification in changes.notifications:
                self.enqueue(connection, notification)
            if changes.released:
                self.release(connection, changes.released)
        for notification in changes.notifications:
            logger.info(
                "Alert %s %s %s",
                notification.alert,
                notification.state,
                dict(notification.labels),
            )

    # Reloads.

    def apply_rules(self, groups: Sequence[RuleGroup], now: float | None = None) -> int:
        """Adopt the rules of a new configuration and drop what they replace.

        Alerts of a rule that is gone, or whose condition changed, are
        removed; a firing one that was notified gets a resolved notification
        in the same transaction. Alerts of unchanged rules keep their state,
        including ``active_at``, so ``for`` is not reset. Alerts restored from
        an older store without a rule digest count as unchanged.

        Returns
        -------
        int
            The number of alerts removed.
        """
        self._digests = {}
        now = time.time() if now is None else now
        rules = {
            (group.name, rule.alert): rule for group in groups for rule in group.rules
        }
        digests = {key: rule_digest(rule) for key, rule in rules.items()}
        changes = _Changes()
        with self._lock:
            for key, state in list(self.alerts.items()):
                rule_key = (state.group, state.alert)
                digest = digests.get(rule_key)
                if (
                    digest is not None
                    and state.extra.get(RULE_DIGEST_KEY, digest) == digest
                ):
                    continue
                del self.alerts[key]
                changes.removed.append(key)
                if state.state == FIRING and state.notified:
                    old_rule = self._rules.get(rule_key) or rules.get(rule_key)
                    resolved = replace(state, state=INACTIVE, last_evaluated=now)
                    changes.notifications.append(
                        self._notification(
                            old_rule, state, resolved, Transition.RESOLVED, now, None
                        )
                    )

            def keep(group: str, alert: str, digest: str) -> bool:
                return digests.get((group, alert)) == digest

            self.detectors.forget(keep)
            self._readings = {
                key: readings
                for key, readings in self._readings.items()
                if key in rules
            }
            kept_triggers = {
                key: started for key, started in self._triggers.items() if keep(*key)
            }
            if kept_triggers != self._triggers:
                self._triggers = kept_triggers
                self.store.meta_set(TRIGGERS_META_KEY, _dump_triggers(kept_triggers))
            self._rules = dict(rules)
            self._commit(changes)
        if changes.removed:
            logger.info(
                "Removed %d alerts of removed or changed rules", len(changes.removed)
            )
        return len(changes.removed)


@dataclass(kw_only=True)
class _Changes:
    """Alert states to save and delete, and notifications to queue, in one
    transaction."""

    changed: list[AlertState] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    """Fingerprints of inhibited alerts whose notification is released."""


def _merge_scores(
    scores: dict[tuple[str, Labels], float],
    readings: Sequence[DetectorReading] | None,
) -> None:
    # Several anomaly rules may watch one series; the highest score counts.
    for reading in readings or ():
        key = (reading.kpi, reading.labels)
        scores[key] = max(scores.get(key, 0.0), reading.anomaly_score)


def _load_triggers(text: str | None) -> dict[tuple[str, str, str], dict[str, float]]:
    if not text:
        return {}
    try:
        rows = json.loads(text)
        triggers: dict[tuple[str, str, str], dict[str, float]] = {}
        for group, alert, digest, key, since in rows:
            triggers.setdefault((group, alert, digest), {})[key] = float(since)
    except (ValueError, TypeError):
        logger.exception(
            "The stored dependency trigger times are invalid; lags start over"
        )
        return {}
    return triggers


def _dump_triggers(triggers: Mapping[tuple[str, str, str], Mapping[str, float]]) -> str:
    rows = [
        [group, alert, digest, key, since]
        for (group, alert, digest), started in sorted(triggers.items())
        for key, since in sorted(started.items())
    ]
    return json.dumps(rows, separators=(",", ":"))


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _stored(state: AlertState) -> StoredAlert:
    extra = dict(state.extra)
    extra["consecutive_true"] = state.consecutive_true
    return StoredAlert(
        fingerprint=state.fingerprint,
        group_name=state.group,
        alert=state.alert,
        labels=dict(state.labels),
        state=state.state,
        active_at=state.active_at,
        fired_at=state.fired_at,
        keep_firing_until=state.keep_firing_until,
        last_value=state.last_value,
        last_evaluated=state.last_evaluated,
        notified=state.notified,
        extra=extra,
    )
