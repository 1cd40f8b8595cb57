from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor._batch_rules import BatchRules
from monitor._rule_kinds import RuleOutcome, evaluate_threshold
from monitor.exprcontext import CycleContext
from monitor.series import Labels, Sample, SeriesKey, make_labels
from monitor.windows import WindowStore
from rules.expr import parse
from rules.lifecycle import Outcome
from rules.model import Location, RuleGroup, ThresholdRule

STEP = 60.0
HERE = Location(path=Path("rules.yaml"), line=1)
EXPRESSIONS = {
    "Last": 'kpi("orders") > 100',
    "Slope": 'slope(kpi("orders"), 1h) > 0',
    "Forecast": 'predict_linear(kpi("orders"), 1h, 1d) < 90',
    "Ratio": 'kpi("orders", region="eu") / on() kpi("orders", region="us") > 1',
}


def make_windows(polls: int = 120, missing_us_after: int | None = None) -> WindowStore:
    rng = np.random.default_rng(5)
    windows = WindowStore(window_seconds=6 * 3600.0)
    regions = ["eu", "us", "apac"]
    level = {"eu": 120.0, "us": 95.0, "apac": 100.0}
    for poll in range(polls):
        samples = []
        for region in regions:
            if (
                region == "us"
                and missing_us_after is not None
                and poll > missing_us_after
            ):
                continue
            value = (
                level[region]
                + rng.normal(0, 2)
                + (0.1 if region == "apac" else -0.05) * poll
            )
            samples.append(
                Sample(
                    SeriesKey("orders", make_labels({"region": region})),
                    poll * STEP,
                    value,
                )
            )
        windows.add_poll("api", samples, STEP)
    return windows


def make_group() -> RuleGroup:
    rules = tuple(
        ThresholdRule(alert=name, location=HERE, expr=text, expression=parse(text))
        for name, text in EXPRESSIONS.items()
    )
    return RuleGroup(name="g", location=HERE, rules=rules)


def effective_missing(outcome: RuleOutcome, labels: Labels) -> Outcome:
    if outcome.missing is None:
        return outcome.default
    return outcome.missing(dict(labels))


@pytest.mark.parametrize("missing_us_after", [None, 100], ids=["all-fresh", "us-stale"])
def test_batch_rules_agree_with_tree_evaluator(missing_us_after: int | None) -> None:
    windows = make_windows(missing_us_after=missing_us_after)
    stale_after = {"orders": 3 * STEP}
    group = make_group()
    now = 119 * STEP
    batched = BatchRules(windows, stale_after).outcomes(group, now)
    assert set(batched) == set(EXPRESSIONS)
    context = CycleContext(
        now=now, windows=windows, key_results={}, stale_after=stale_after
    )
    for rule in group.rules:
        assert isinstance(rule, ThresholdRule)
        tree_outcome = evaluate_threshold(rule, context)
        tree = tree_outcome.results
        fast = batched[rule.alert].results
        assert {k for k, (o, _) in fast.items() if o is Outcome.TRUE} == {
            k for k, (o, _) in tree.items() if o is Outcome.TRUE
        }, rule.alert
        # The batch path lists stale series as no data. The tree path leaves
        # out the elements that fail the comparison, so they are decided as
        # missing alerts.
        for labels, (outcome, _) in fast.items():
            expected = tree.get(labels, (effective_missing(tree_outcome, labels),))
            assert expected[0] is outcome, (rule.alert, labels)
        if rule.alert == "Ratio" and missing_us_after is not None:
            assert [o for o, _ in fast.values()] == [Outcome.NO_DATA]
        for labels, (outcome, value) in fast.items():
            if outcome is Outcome.TRUE:
                assert value == pytest.approx(tree[labels][1]), rule.alert


def test_batch_rules_mark_stale_series_as_no_data() -> None:
    windows = make_windows(missing_us_after=100)
    group = RuleGroup(
        name="g",
        location=HERE,
        rules=(
            ThresholdRule(
                alert="Any",
                location=HERE,
                expr='kpi("orders") > 0',
                expression=parse('kpi("orders") > 0'),
            ),
        ),
    )
    outcome = BatchRules(windows, {"orders": 3 * STEP}).outcomes(group, 119 * STEP)[
        "Any"
    ]
    by_region = {
        dict(labels)["region"]: result
        for labels, (result, _) in outcome.results.items()
    }
    assert by_region == {
        "eu": Outcome.TRUE,
        "apac": Outcome.TRUE,
        "us": Outcome.NO_DATA,
    }


def test_batch_rules_skip_kpis_outside_dense_blocks() -> None:
    windows = WindowStore(window_seconds=3600.0)
    windows.add_samples([Sample(SeriesKey("orders"), 0.0, 200.0)])
    outcomes = BatchRules(windows, {}).outcomes(make_group(), 0.0)
    assert outcomes == {}
