"""Loading the dependency and anomaly rule kinds that the evaluator runs."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.evaluation import rule_digest
from rules.loader import load_rule_file
from rules.model import AnomalyRule, DependencyRule, DetectorSpec, Rule

KPIS = ["orders", "capacity", "signups"]

VALID = """\
groups:
  - name: growth
    rules:
      - alert: OrdersOutpaceCapacity
        when: kpi("orders") > 100
        require: kpi("capacity") >= 80
        lag: 7d
        match_on: [region]
      - alert: SignupsAnomaly
        kpi: signups
        match: {region: eu}
        match_re: {plan: "pro|team"}
        detector: {type: robust_z, threshold: 4}
"""


def load(tmp_path: Path, text: str) -> tuple[Rule, ...]:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (group,) = load_rule_file(path, kpis=KPIS)
    return group.rules


def write_rule(tmp_path: Path, rule: str) -> Path:
    path = tmp_path / "rules.yaml"
    text = "groups:\n  - name: g\n    rules:\n" + textwrap.indent(rule, "      ")
    path.write_text(text, encoding="utf-8")
    return path


def test_load_dependency_and_anomaly_rules(tmp_path: Path) -> None:
    dependency, anomaly = load(tmp_path, VALID)

    assert isinstance(dependency, DependencyRule)
    assert dependency.lag == timedelta(days=7)
    assert dependency.match_on == ("region",)
    assert dependency.when_expression is not None
    assert dependency.require_expression is not None
    assert isinstance(anomaly, AnomalyRule)
    assert anomaly.kpi == "signups"
    assert anomaly.match == {"region": "eu"}
    assert anomaly.match_re == {"plan": "pro|team"}
    assert anomaly.detector == DetectorSpec(type="robust_z", params={"threshold": 4})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(
            "- alert: A\n  kpi: signups\n  detector: {type: robust_zz}\n",
            r"detector.type: Unknown detector type 'robust_zz'. Did you mean "
            r"'robust_z'\?",
            id="unknown-detector-type",
        ),
        pytest.param(
            "- alert: A\n  kpi: signups\n  detector: {type: robust_z, treshold: 4}\n",
            r"Unknown parameter 'treshold' of the robust_z detector. Did you mean "
            r"'threshold'\?",
            id="unknown-detector-parameter",
        ),
        pytest.param(
            "- alert: A\n  kpi: signups\n  detector: {type: robust_z, threshold: -1}\n",
            r"detector.threshold: The 'threshold' parameter of RobustZDetector must "
            r"be a float in the range \(0, inf\); got -1",
            id="detector-parameter-out-of-range",
        ),
        pytest.param(
            "- alert: A\n  kpi: signups\n  detector: {threshold: 4}\n",
            r"detector.type: Missing required key 'type'",
            id="detector-type-missing",
        ),
        pytest.param(
            "- alert: A\n  kpi: signupz\n  detector: {type: robust_z}\n",
            r"kpi: Unknown KPI 'signupz'. Did you mean 'signups'\?",
            id="unknown-kpi",
        ),
        pytest.param(
            "- alert: A\n  kpi: signups\n  match_re: {plan: '(pro'}\n"
            "  detector: {type: robust_z}\n",
            r"match_re.plan: Invalid regular expression '\(pro'",
            id="invalid-regular-expression",
        ),
        pytest.param(
            "- alert: A\n  when: kpi('orders') > 1\n  require: kpi('capacity') > 1\n"
            "  match_on: [region]\n  match_ignoring: [channel]\n",
            r"match_on and match_ignoring exclude each other",
            id="match-on-and-ignoring",
        ),
        pytest.param(
            "- alert: A\n  when: kpi('orders') > 1\n  require: kpi('capacity') > 1\n"
            "  lag: -1d\n",
            r"lag: Invalid duration '-1d'",
            id="negative-lag",
        ),
        pytest.param(
            "- alert: A\n  when: kpi('orders') > 1\n",
            r"Missing required key 'require'",
            id="require-missing",
        ),
        pytest.param(
            "- alert: A\n  when: kpi('orders') > 1\n  require: kpi('capacty') > 1\n",
            r"require: .*capacty",
            id="unknown-kpi-in-require",
        ),
        pytest.param(
            "- alert: A\n  expr: kpi('orders') > 1\n  expression: x\n",
            r"Unknown key 'expression'",
            id="parsed-field-not-a-key",
        ),
    ],
)
def test_load_rule_kind_errors(tmp_path: Path, rule: str, message: str) -> None:
    path = write_rule(tmp_path, rule)

    with pytest.raises(ConfigError, match=message):
        load_rule_file(path, kpis=KPIS)


def test_rule_digest_ignores_lifecycle_fields(tmp_path: Path) -> None:
    (base,) = load(
        tmp_path,
        'groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: kpi("orders") > 1\n',
    )
    (changed_for,) = load(
        tmp_path,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n"
        '        expr: kpi("orders") > 1\n        for: 1h\n'
        "        annotations: {summary: s}\n",
    )
    (changed_expr,) = load(
        tmp_path,
        'groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: kpi("orders") > 2\n',
    )

    assert rule_digest(base) == rule_digest(changed_for)
    assert rule_digest(base) != rule_digest(changed_expr)
