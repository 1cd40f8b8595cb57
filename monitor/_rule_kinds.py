"""Evaluation of each rule kind into one outcome per alert label set.

The functions here read the cycle context and return a ``RuleOutcome``; the
evaluator then steps the alerts through the shared lifecycle. Missing data is
decided per alert: an alert whose own series went stale or absent gets
``NO_DATA``, while one whose series is fresh but no longer matches gets
``FALSE``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from detectors.anomaly import make_detector
from detectors.base import STATUS_OK, BaseDetector
from monitor.exprcontext import CycleContext
from monitor.keyresults import KeyResultStatus
from monitor.series import Labels
from rules import expr
from rules.expr import evaluate as evaluate_expression
from rules.lifecycle import Outcome
from rules.lifecycle import fingerprint as alert_fingerprint
from rules.model import AnomalyRule, DependencyRule, ForecastRule, Rule, ThresholdRule

logger = logging.getLogger(__name__)

REFIT_FRACTION = 0.1
"""An anomaly detector is refitted once the samples it scored since its last
fit reach this fraction of the samples it was fitted on."""

Results = dict[Labels, tuple[Outcome, float | None]]


@dataclass(frozen=True, kw_only=True)
class RuleOutcome:
    """The result of one evaluation of one rule, per alert label set.

    Attributes
    ----------
    results : dict
        Outcome and value by alert labels (series labels, rule labels and
        ``alertname``).
    default : Outcome
        Outcome of existing alerts that are not in ``results`` when
        ``missing`` is None.
    missing : callable or None
        ``missing(alert_labels)`` decides the outcome of an existing alert
        that is not in ``results``: ``NO_DATA`` when its series is stale or
        absent, ``FALSE`` otherwise.
    rule_has_no_data : bool
        No KPI that the rule reads has a fresh series.
    """

    results: Results
    default: Outcome = Outcome.FALSE
    missing: Callable[[Mapping[str, str]], Outcome] | None = None
    rule_has_no_data: bool = False
    key_results: dict[Labels, KeyResultStatus] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DetectorReading:
    """The newest scores of one series by one anomaly rule's detector."""

    kpi: str
    rule: str
    labels: Labels
    """Series labels, without the rule's labels."""
    score: float
    """Largest detector score of the samples scored in the last cycle."""
    anomaly_score: float
    """``score`` mapped into [0, 1]; 0.5 is the detector's threshold."""
    lower: float
    upper: float
    flagged: bool
    value: float
    """The newest scored sample value."""


def alert_labels(rule: Rule, series_labels: Labels) -> Labels:
    """Return the labels of the alert for one series: series, rule, alertname."""
    labels = dict(series_labels)
    labels.update(rule.labels)
    labels["alertname"] = rule.alert
    return tuple(sorted(labels.items()))


def series_labels_of(rule: Rule, labels: Mapping[str, str]) -> Labels:
    """Return the series part of an alert's labels.

    A series label that a rule label replaced is lost, so such an alert is
    matched on its remaining labels only.
    """
    return tuple(
        sorted(
            (name, value)
            for name, value in labels.items()
            if name != "alertname" and name not in rule.labels
        )
    )


class DataPresence:
    """Freshness of the series that a rule's alerts come from, for one cycle.

    Parameters
    ----------
    context : CycleContext
    rule : Rule
        The rule the alerts belong to.
    kpis : iterable of str
        KPIs the rule reads.
    key_results : iterable of str
        Key results the rule reads.
    """

    def __init__(
        self,
        context: CycleContext,
        rule: Rule,
        kpis: Iterable[str],
        key_results: Iterable[str] = (),
    ) -> None:
        self.context = context
        self.rule = rule
        self.kpis = sorted(set(kpis))
        self.key_results = set(key_results)
        self._cache: dict[str, dict[Labels, bool]] = {}
        self._selected: list[dict[Labels, bool]] | None = None

    def outcome(self, labels: Mapping[str, str]) -> Outcome:
        """Return ``NO_DATA`` or ``FALSE`` for an alert missing from the result."""
        return Outcome.FALSE if self.has_data(labels) else Outcome.NO_DATA

    def has_data(self, labels: Mapping[str, str], *, series_only: bool = False) -> bool:
        """Return whether the series of an alert with ``labels`` are fresh.

        A series belongs to the alert when its labels contain the alert's
        series labels. The data is missing when a KPI has such series and all
        of them are stale, when no KPI has such a series, or when the alert
        names a key result that has no figures.
        """
        wanted = (
            tuple(sorted(labels.items()))
            if series_only
            else series_labels_of(self.rule, labels)
        )
        key_result = dict(wanted).get("key_result")
        if (
            key_result in self.key_results
            and self.context.key_result(key_result) is None
        ):
            return False
        if not self.kpis:
            return True

        found_fresh = False
        for kpi in self.kpis:
            freshness = self._freshness(kpi)
            exact = freshness.get(wanted)
            if exact is not None:
                own = [exact]
            else:
                subset = set(wanted)
                own = [fresh for key, fresh in freshness.items() if subset <= set(key)]
            if not own:
                continue
            if not any(own):
                return False
            found_fresh = True
        return found_fresh

    def element_has_data(self, labels: Labels) -> bool:
        """Return whether an expression element was computed from fresh series.

        The element may come from every selected series whose labels contain
        its labels: one series when the labels are equal, several when a
        binary operation matched ``on`` fewer labels. One stale series among
        them makes the element no data. An element that no selected series
        explains is judged on the KPIs' series, as an alert is.
        """
        required = set(labels)
        found = False
        for freshness in self._selected_freshness():
            exact = freshness.get(labels)
            if exact is not None:
                candidates = [exact]
            else:
                candidates = [
                    fresh for key, fresh in freshness.items() if required <= set(key)
                ]
            if not all(candidates):
                return False
            found = found or bool(candidates)
        return found or self.has_data(dict(labels), series_only=True)

    def _selected_freshness(self) -> list[dict[Labels, bool]]:
        if self._selected is None:
            expression = getattr(self.rule, "expression", None)
            selectors = expr.referenced_selectors(expression) if expression else ()
            self._selected = [
                {
                    window.labels: self.context.is_fresh(window)
                    for window in self.context.select(selector.kpi, selector.matchers)
                }
                for selector in selectors
            ]
        return self._selected

    def any_stale(self) -> bool:
        """Return whether any series of the rule's KPIs is stale."""
        return any(
            not fresh for kpi in self.kpis for fresh in self._freshness(kpi).values()
        )

    def _freshness(self, kpi: str) -> dict[Labels, bool]:
        cached = self._cache.get(kpi)
        if cached is None:
            cached = {
                window.labels: self.context.is_fresh(window)
                for window in self.context.series(kpi)
            }
            self._cache[kpi] = cached
        return cached


def evaluate_threshold(rule: ThresholdRule, context: CycleContext) -> RuleOutcome:
    """Evaluate ``expr``: one true alert per element of its result."""
    result = evaluate_expression(rule.expression, context)
    if isinstance(result, int | float):
        holds = not math.isnan(result) and result != 0
        labels = alert_labels(rule, ())
        return RuleOutcome(
            results={labels: (Outcome.TRUE, float(result))} if holds else {}
        )

    if expr.reads_absence(rule.expression):
        # absent() and stale() hold because data is missing, so their
        # elements are true as evaluated, and an alert that no longer
        # matches resolves.
        return RuleOutcome(
            results={
                alert_labels(rule, element.labels): (Outcome.TRUE, float(element.value))
                for element in result
            },
            default=Outcome.FALSE,
        )

    presence = DataPresence(
        context,
        rule,
        expr.referenced_kpis(rule.expression),
        expr.referenced_key_results(rule.expression),
    )
    # The expression reads the last sample of a series however old it is, so
    # an element of a stale series is no data rather than true.
    check_elements = presence.any_stale()
    matched: Results = {}
    for element in result:
        labels = alert_labels(rule, element.labels)
        outcome = Outcome.TRUE
        if check_elements and not presence.element_has_data(element.labels):
            outcome = Outcome.NO_DATA
        matched[labels] = (outcome, float(element.value))
    no_data = not result and not context.has_fresh_data(rule.expression)
    return RuleOutcome(
        results=matched, missing=presence.outcome, rule_has_no_data=no_data
    )


def evaluate_dependency(
    rule: DependencyRule,
    context: CycleContext,
    triggers: Mapping[str, float],
) -> tuple[RuleOutcome, dict[str, float]]:
    """Evaluate ``when`` and ``require`` and the ``lag`` allowance.

    Parameters
    ----------
    triggers : mapping of str to float
        When ``when`` started holding, by alert fingerprint, from the
        previous cycle.

    Returns
    -------
    (RuleOutcome, dict)
        The outcome and the updated trigger start times. A label set whose
        trigger no longer holds is dropped, so its lag starts over.
    """
    when = evaluate_expression(rule.when_expression, context)
    require = evaluate_expression(rule.require_expression, context)
    # As with ``and`` in expressions, a scalar side matches every element.
    scalar_side = not isinstance(when, tuple) or not isinstance(require, tuple)
    when_elements = _elements(when)

    def match_key(labels: Labels) -> Labels:
        if scalar_side:
            return ()
        if rule.match_on is not None:
            return tuple(
                (name, value) for name, value in labels if name in rule.match_on
            )
        return tuple(
            (name, value) for name, value in labels if name not in rule.match_ignoring
        )

    # NOTE: a requirement element of a stale series still counts as met, so a
    # stale require KPI can hide a violation until the series leaves the window.
    met = {match_key(element.labels) for element in _elements(require)}
    require_presence = DataPresence(
        context, rule, expr.referenced_kpis(rule.require_expression)
    )
    when_presence = DataPresence(
        context,
        rule,
        expr.referenced_kpis(rule.when_expression),
        expr.referenced_key_results(rule.when_expression),
    )
    check_elements = when_presence.any_stale()
    results: Results = {}
    started: dict[str, float] = {}
    for element in when_elements:
        labels = alert_labels(rule, element.labels)
        if check_elements and not when_presence.has_data(
            dict(element.labels), series_only=True
        ):
            results[labels] = (Outcome.NO_DATA, float(element.value))
            continue

        key = alert_fingerprint(rule.alert, dict(labels))
        since = triggers.get(key, context.now)
        started[key] = since
        required = match_key(element.labels)
        if required in met:
            outcome = Outcome.FALSE
        elif not require_presence.has_data(dict(required), series_only=True):
            outcome = Outcome.NO_DATA
        elif context.now - since < rule.lag.total_seconds():
            outcome = Outcome.FALSE
        else:
            outcome = Outcome.TRUE
        results[labels] = (outcome, float(element.value))

    no_data = not when_elements and not context.has_fresh_data(rule.when_expression)
    rule_outcome = RuleOutcome(
        results=results, missing=when_presence.outcome, rule_has_no_data=no_data
    )
    return rule_outcome, started


def _elements(result: expr.Vector | float) -> expr.Vector:
    if isinstance(result, tuple):
        return result

    if math.isnan(result) or result == 0:
        return ()
    return (expr.Element((), float(result)),)


def evaluate_forecast(
    rule: ForecastRule,
    statuses: Mapping[str, KeyResultStatus],
    is_firing: Callable[[Labels], bool],
) -> RuleOutcome:
    """Compare each key result's attainment probability with the threshold.

    A key result counts as forecast to miss when its probability is below
    ``attainment_below`` and the line through its latest steps misses the
    target too, so a low probability that the recent steps contradict waits.
    A firing alert clears only above ``attainment_below + clear_margin``.
    """
    results: Results = {}
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
        labels = alert_labels(rule, kr_labels)
        if status is None or status.status == "insufficient_data":
            results[labels] = (Outcome.NO_DATA, None)
            continue

        by_labels[labels] = status
        probability = status.attainment_probability
        if is_firing(labels):
            missing = probability < rule.attainment_below + rule.clear_margin
        else:
            missing = probability < rule.attainment_below and trend_misses(status)
        outcome = Outcome.TRUE if missing else Outcome.FALSE
        results[labels] = (outcome, probability)
    return RuleOutcome(results=results, key_results=by_labels)


def trend_misses(status: KeyResultStatus) -> bool:
    """Return whether the line through the latest steps misses the target.

    Without such a line (NaN) nothing contradicts the forecast, so it counts
    as a miss.
    """
    trend = status.forecast.trend_forecast
    if math.isnan(trend):
        return True
    if status.config.direction == "increase":
        return trend < status.config.target
    return trend > status.config.target


class _SeriesDetector:
    """A fitted detector of one series and where its scoring stopped."""

    def __init__(self, detector: BaseDetector) -> None:
        self.detector = detector
        self.fitted_samples = 0
        self.scored_since_fit = 0
        self.scored_until: float | None = None
        self.reading: DetectorReading | None = None

    def needs_refit(self) -> bool:
        if self.scored_until is None:
            return True

        limit = max(1, math.ceil(REFIT_FRACTION * self.fitted_samples))
        return self.scored_since_fit >= limit


class DetectorBank:
    """Fitted anomaly detectors, one per anomaly rule and series.

    A detector is fitted on the window up to the samples it has not scored,
    scores the new samples in streaming order, and is refitted on the whole
    window once the window moved by ``REFIT_FRACTION`` of its samples.
    Detectors live in memory only; after a restart they are fitted again on
    the windows loaded from the store.
    """

    def __init__(self) -> None:
        self._detectors: dict[tuple[str, str, str, Labels], _SeriesDetector] = {}

    def forget(self, keep: Callable[[str, str, str], bool]) -> None:
        """Drop the detectors of rules for which ``keep(group, alert, digest)``
        is false."""
        for key in [k for k in self._detectors if not keep(k[0], k[1], k[2])]:
            del self._detectors[key]

    def read(
        self,
        key: tuple[str, str, str],
        rule: AnomalyRule,
        window: expr.SeriesWindow,
        now: float,
    ) -> DetectorReading | None:
        """Score the samples of ``window`` that are new since the last call.

        Returns
        -------
        DetectorReading or None
            The reading of the newest scored samples (the previous one when
            nothing is new), or None while the detector has too little data.
        """
        bank_key = (*key, window.labels)
        entry = self._detectors.get(bank_key)
        if entry is None:
            entry = _SeriesDetector(self._make(rule))
            self._detectors[bank_key] = entry
        end = int(np.searchsorted(window.timestamps, now, side="right"))
        times, values = window.timestamps[:end], window.values[:end]
        if len(times) == 0:
            return None

        if entry.scored_until is None:
            new_from = len(times) - 1
        else:
            new_from = int(np.searchsorted(times, entry.scored_until, side="right"))
        if entry.needs_refit():
            entry.detector = self._make(rule).fit(times[:new_from], values[:new_from])
            entry.fitted_samples = new_from
            entry.scored_since_fit = 0
        if new_from >= len(times):
            return entry.reading

        result = entry.detector.score(times[new_from:], values[new_from:])
        entry.scored_until = float(times[-1])
        entry.scored_since_fit += len(times) - new_from
        scored = result.status == STATUS_OK
        if not np.any(scored):
            entry.reading = None
            return None

        newest = int(np.flatnonzero(scored)[-1])
        entry.reading = DetectorReading(
            kpi=rule.kpi,
            rule=rule.alert,
            labels=window.labels,
            score=float(np.max(result.score[scored])),
            anomaly_score=float(np.max(result.anomaly_score[scored])),
            lower=float(result.lower[newest]),
            upper=float(result.upper[newest]),
            flagged=bool(np.any(result.flag[scored])),
            value=float(values[new_from + newest]),
        )
        return entry.reading

    @staticmethod
    def _make(rule: AnomalyRule) -> BaseDetector:
        return make_detector(rule.detector.type, **dict(rule.detector.params))


def anomaly_matchers(rule: AnomalyRule) -> tuple[expr.Matcher, ...]:
    """Return the series matchers of ``match`` and ``match_re``."""
    matchers = [
        expr.Matcher(name=name, operator="=", value=value)
        for name, value in sorted(rule.match.items())
    ]
    matchers.extend(
        expr.Matcher(name=name, operator="=~", value=value, pattern=re.compile(value))
        for name, value in sorted(rule.match_re.items())
    )
    return tuple(matchers)


def evaluate_anomaly(
    rule: AnomalyRule,
    context: CycleContext,
    bank: DetectorBank,
    key: tuple[str, str, str],
) -> tuple[RuleOutcome, list[DetectorReading]]:
    """Score the newest samples of each selected series and flag anomalies.

    A stale series, a series whose detector has too little data and a
    series that vanished from the window get ``NO_DATA``. A detector that
    raises gives ``ERROR`` for its series only.
    """
    results: Results = {}
    readings: list[DetectorReading] = []
    for window in context.select(rule.kpi, anomaly_matchers(rule)):
        labels = alert_labels(rule, window.labels)
        if not context.is_fresh(window):
            results[labels] = (Outcome.NO_DATA, None)
            continue

        try:
            reading = bank.read(key, rule, window, context.now)
        except Exception:
            logger.exception(
                "Detector %s of rule %s failed on series %s",
                rule.detector.type,
                rule.alert,
                dict(window.labels),
            )
            results[labels] = (Outcome.ERROR, None)
            continue
        if reading is None:
            results[labels] = (Outcome.NO_DATA, None)
            continue

        readings.append(reading)
        outcome = Outcome.TRUE if reading.flagged else Outcome.FALSE
        results[labels] = (outcome, reading.value)
    return RuleOutcome(results=results, default=Outcome.NO_DATA), readings
