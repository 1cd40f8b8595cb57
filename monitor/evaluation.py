"""The evaluation cycle: rules to outcomes, outcomes to alert state changes.

Each cycle of a rule group evaluates its rules against the in-memory
windows and the latest key result statuses, steps every alert through the
lifecycle, and writes the new alert state together with the notifications
it causes in one store transaction.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exporters.notification import Notification
from monitor.config.model import Config
from monitor.exprcontext import CycleContext
from monitor.keyresults import KeyResultStatus
from monitor.series import Labels
from monitor.store import Store, StoredAlert
from monitor.windows import WindowStore
from rules import templates
from rules.expr import evaluate as evaluate_expression
from rules.lifecycle import (
    FIRING,
    INACTIVE,
    AlertState,
    Outcome,
    Timing,
    Transition,
    step,
)
from rules.model import ForecastRule, Rule, RuleGroup, ThresholdRule

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3
"""Poll intervals without a new sample after which a series is stale."""

FORECAST_CONFIRMATIONS = 2
"""Consecutive evaluations below the threshold before a forecast rule fires."""


@dataclass(frozen=True, kw_only=True)
class RuleOutcome:
    """What one evaluation of one rule found, per alert label set."""

    results: dict[Labels, tuple[Outcome, float | None]]
    default: Outcome = Outcome.FALSE
    """Outcome for existing alerts that are not in ``results``."""
    key_results: dict[Labels, KeyResultStatus] = field(default_factory=dict)


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
    confirmations = FORECAST_CONFIRMATIONS if isinstance(rule, ForecastRule) else 1
    return Timing(
        for_seconds=rule.for_.total_seconds(),
        keep_firing_for_seconds=rule.keep_firing_for.total_seconds(),
        no_data=rule.no_data,
        on_error=rule.on_error,
        confirmations=confirmations,
    )


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
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        windows: WindowStore,
        key_results: Callable[[], Mapping[str, KeyResultStatus]],
        enqueue: Callable[[object, Notification], None],
    ) -> None:
        self.config = config
        self.store = store
        self.windows = windows
        self.key_results = key_results
        self.enqueue = enqueue
        self._lock = threading.Lock()
        self.alerts: dict[str, AlertState] = {}
        self.reports: dict[str, GroupReport] = {}
        self.stale_after = stale_after_seconds(config)
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

    def evaluate_group(self, group: RuleGroup, now: float | None = None) -> GroupReport:
        """Evaluate every rule of ``group`` once and commit the changes."""
        started = time.monotonic()
        now = time.time() if now is None else now
        statuses = self.key_results()
        context = CycleContext(
            now=now,
            windows=self.windows,
            key_results=statuses,
            stale_after=self.stale_after,
        )
        failed = 0
        changed: list[AlertState] = []
        removed: list[str] = []
        notifications: list[Notification] = []
        with self._lock:
            for rule in group.rules:
                outcome = self._evaluate_rule(rule, context, statuses)
                if outcome.default is Outcome.ERROR and not outcome.results:
                    failed += 1
                self._step_rule(
                    group, rule, outcome, now, changed, removed, notifications
                )
            self._commit(changed, removed, notifications)
        report = GroupReport(
            group=group.name,
            duration_seconds=time.monotonic() - started,
            failed_rules=failed,
            evaluated_at=now,
        )
        self.reports[group.name] = report
        return report

    def _evaluate_rule(
        self,
        rule: Rule,
        context: CycleContext,
        statuses: Mapping[str, KeyResultStatus],
    ) -> RuleOutcome:
        try:
            if isinstance(rule, ThresholdRule):
                return self._evaluate_threshold(rule, context)
            return self._evaluate_forecast(rule, statuses)
        except Exception:
            logger.exception(
                "Evaluating rule %s (%s) failed", rule.alert, rule.location
            )
            return RuleOutcome(results={}, default=Outcome.ERROR)

    def _evaluate_threshold(
        self, rule: ThresholdRule, context: CycleContext
    ) -> RuleOutcome:
        result = evaluate_expression(rule.expression, context)
        if isinstance(result, int | float):
            holds = not math.isnan(result) and result != 0
            labels = _alert_labels(rule, ())
            return RuleOutcome(
                results={labels: (Outcome.TRUE, float(result))} if holds else {}
            )

        if not result and not context.has_fresh_data(rule.expression):
            return RuleOutcome(results={}, default=Outcome.NO_DATA)

        matched: dict[Labels, tuple[Outcome, float | None]] = {
            _alert_labels(rule, element.labels): (Outcome.TRUE, float(element.value))
            for element in result
        }
        return RuleOutcome(results=matched)

    def _evaluate_forecast(
        self, rule: ForecastRule, statuses: Mapping[str, KeyResultStatus]
    ) -> RuleOutcome:
        results: dict[Labels, tuple[Outcome, float | None]] = {}
        by_labels: dict[Labels, KeyResultStatus] = {}
        for name in rule.key_results:
            status = statuses.get(name)
            kr_labels: Labels = (("key_result", name),)
            if status is not None:
                kr_labels = (
                    ("key_result", name),
                    ("objective", status.config.objective),
                    ("owner", status.config.owner),
                )
            labels = _alert_labels(rule, kr_labels)
            if status is None or status.status == "insufficient_data":
                results[labels] = (Outcome.NO_DATA, None)
                continue

            by_labels[labels] = status
            probability = status.attainment_probability
            current = self.alerts.get(_fingerprint(rule, labels))
            threshold = rule.attainment_below
            if current is not None and current.state == FIRING:
                threshold += rule.clear_margin
            outcome = Outcome.TRUE if probability < threshold else Outcome.FALSE
            results[labels] = (outcome, probability)
        return RuleOutcome(results=results, key_results=by_labels)

    def _step_rule(
        self,
        group: RuleGroup,
        rule: Rule,
        outcome: RuleOutcome,
        now: float,
        changed: list[AlertState],
        removed: list[str],
        notifications: list[Notification],
    ) -> None:
        timing = timing_of(rule)
        seen: set[str] = set()
        for labels, (result, value) in outcome.results.items():
            key = _fingerprint(rule, labels)
            seen.add(key)
            state = self.alerts.get(key) or AlertState(
                alert=rule.alert, group=group.name, labels=dict(labels)
            )
            self._apply(
                rule,
                state,
                result,
                value,
                now,
                timing,
                outcome,
                changed,
                removed,
                notifications,
            )

        for key, state in list(self.alerts.items()):
            if state.alert != rule.alert or state.group != group.name or key in seen:
                continue
            self._apply(
                rule,
                state,
                outcome.default,
                None,
                now,
                timing,
                outcome,
                changed,
                removed,
                notifications,
            )

    def _apply(
        self,
        rule: Rule,
        state: AlertState,
        result: Outcome,
        value: float | None,
        now: float,
        timing: Timing,
        outcome: RuleOutcome,
        changed: list[AlertState],
        removed: list[str],
        notifications: list[Notification],
    ) -> None:
        new_state, transition = step(state, result, now, timing, value)
        key = state.fingerprint
        if transition is not None:
            status = outcome.key_results.get(tuple(sorted(state.labels.items())))
            notifications.append(
                self._notification(rule, state, new_state, transition, now, status)
            )
        if (
            new_state.state == INACTIVE
            and transition is None
            and state.state == INACTIVE
        ):
            if key in self.alerts:
                del self.alerts[key]
                removed.append(key)
            return

        if new_state.state == INACTIVE:
            self.alerts.pop(key, None)
            removed.append(key)
            return

        self.alerts[key] = new_state
        changed.append(new_state)

    def _notification(
        self,
        rule: Rule,
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
        annotations = templates.render_annotations(
            rule.annotations,
            value=value,
            labels=dict(after.labels),
            key_result=kr_context,
        )
        fired_at = source.fired_at
        return Notification(
            alert=rule.alert,
            fingerprint=before.fingerprint,
            state="firing" if firing else "resolved",
            labels=dict(after.labels),
            annotations=annotations,
            value=value,
            active_at=_datetime(active_at),
            fired_at=_datetime(fired_at) if fired_at is not None else None,
            resolved_at=None if firing else _datetime(now),
            generator_url=f"{self.config.server.base_url}/api/v1/rules#{rule.alert}",
            key_result=kr_context,
            kpi=None,
        )

    def _commit(
        self,
        changed: Sequence[AlertState],
        removed: Sequence[str],
        notifications: Sequence[Notification],
    ) -> None:
        if not (changed or removed or notifications):
            return

        with self.store.transaction() as connection:
            self.store.delete_alerts(connection, removed)
            self.store.save_alerts(connection, [_stored(s) for s in changed])
            for notification in notifications:
                self.enqueue(connection, notification)
        for notification in notifications:
            logger.info(
                "Alert %s %s %s",
                notification.alert,
                notification.state,
                dict(notification.labels),
            )

    def drop_rules_except(self, groups: Sequence[RuleGroup]) -> None:
        """Forget alerts of rules that no longer exist after a reload."""
        names = {(group.name, rule.alert) for group in groups for rule in group.rules}
        with self._lock:
            gone = [
                key
                for key, state in self.alerts.items()
                if (state.group, state.alert) not in names
            ]
            for key in gone:
                del self.alerts[key]
            if gone:
                with self.store.transaction() as connection:
                    self.store.delete_alerts(connection, gone)


def _alert_labels(rule: Rule, series_labels: Labels) -> Labels:
    labels = dict(series_labels)
    labels.update(rule.labels)
    labels["alertname"] = rule.alert
    return tuple(sorted(labels.items()))


def _fingerprint(rule: Rule, labels: Labels) -> str:
    return AlertState(alert=rule.alert, group="", labels=dict(labels)).fingerprint


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
