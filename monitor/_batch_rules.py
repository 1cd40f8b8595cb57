"""Threshold rules evaluated in vectorised batches over dense blocks.

Before a group's rules run one by one, ``BatchRules`` evaluates every
threshold rule whose expression ``rules.batch`` can compile and whose KPIs
all live in one source's dense block. The rule loop then takes those
outcomes instead of calling the tree evaluator.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monitor._rule_kinds import Results, RuleOutcome, alert_labels
from monitor.windows import WindowStore
from rules import expr
from rules.batch import BatchPlan, compile_shape
from rules.lifecycle import Outcome
from rules.model import RuleGroup, ThresholdRule

NOTHING_HOLDS = RuleOutcome(results={})
"""Shared outcome of a rule whose series are fresh and none satisfies it."""


class BatchRules:
    """Batch plans of the rule groups of one configuration.

    Parameters
    ----------
    windows : WindowStore
    stale_after : mapping of str to float
        Staleness limit of each KPI in seconds.
    """

    def __init__(self, windows: WindowStore, stale_after: Mapping[str, float]) -> None:
        self.windows = windows
        self.stale_after = dict(stale_after)
        self._plans: dict[tuple[int, str], BatchPlan] = {}
        self._layout: dict[str, str] = {}
        self._layout_version = -1
        self._assigned: dict[int, tuple[RuleGroup, dict[str, list[str]]]] = {}

    def outcomes(self, group: RuleGroup, now: float) -> dict[str, RuleOutcome]:
        """Return the outcome of each batch-evaluated rule of ``group`` by alert."""
        if self.windows.layout_version != self._layout_version:
            self._layout_version = self.windows.layout_version
            layout = self.windows.dense_kpis()
            if layout != self._layout:
                self._plans.clear()
                self._assigned.clear()
                self._layout = layout
        rules = {
            rule.alert: rule
            for rule in group.rules
            if isinstance(rule, ThresholdRule) and rule.expression is not None
        }
        cached = self._assigned.get(id(group))
        if cached is None or cached[0] is not group:
            cached = (group, self._assign(rules, self._layout))
            self._assigned[id(group)] = cached
        outcomes: dict[str, RuleOutcome] = {}
        for block, names in cached[1].items():
            plan = self._plan(group, block, {name: rules[name] for name in names})
            result = plan.evaluate(now)
            for name in result.compiled:
                rule = rules[str(name)]
                holding = result.holding.get(name, [])
                stale = result.stale.get(name, set())
                if holding or stale:
                    outcomes[rule.alert] = _outcome(rule, holding, stale)
                elif plan.resolved(name):
                    outcomes[rule.alert] = NOTHING_HOLDS
        return outcomes

    def _assign(
        self, rules: Mapping[str, ThresholdRule], layout: Mapping[str, str]
    ) -> dict[str, list[str]]:
        """Group compilable rules by the one dense block all their KPIs are in."""
        assigned: dict[str, list[str]] = {}
        for name, rule in rules.items():
            if compile_shape(rule.expression) is None:
                continue
            blocks = {layout.get(kpi) for kpi in expr.referenced_kpis(rule.expression)}
            if len(blocks) == 1 and None not in blocks:
                assigned.setdefault(str(blocks.pop()), []).append(name)
        return assigned

    def _plan(
        self, group: RuleGroup, block: str, rules: Mapping[str, ThresholdRule]
    ) -> BatchPlan:
        key = (id(group), block)
        plan = self._plans.get(key)
        if plan is None:
            expressions: dict[Hashable, expr.Expr] = {
                name: rule.expression for name, rule in rules.items()
            }
            plan = BatchPlan(
                expressions, self.windows.blocks()[block], stale_after=self.stale_after
            )
            self._plans[key] = plan
        return plan


def _outcome(
    rule: ThresholdRule,
    holding: list[tuple[tuple[tuple[str, str], ...], float]],
    stale: set[tuple[tuple[str, str], ...]],
) -> RuleOutcome:
    results: Results = {}
    for labels in stale:
        results[alert_labels(rule, labels)] = (Outcome.NO_DATA, None)
    for labels, value in holding:
        results[alert_labels(rule, labels)] = (Outcome.TRUE, value)
    return RuleOutcome(results=results)
