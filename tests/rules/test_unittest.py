"""Tests of rule unit tests: the notation, the runner and ``krwatch test rules``."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.series import SeriesKey
from rules.testing import NotationError, expand_values, parse_series, run_test_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2 3", [1.0, 2.0, 3.0]),
        ("-2+4x3", [-2.0, 2.0, 6.0, 10.0]),
        ("1-2x4", [1.0, -1.0, -3.0, -5.0, -7.0]),
        ("1x4", [1.0] * 5),
        ("1 _x3 5", [1.0, None, None, None, 5.0]),
        ("_ 0.5e1", [None, 5.0]),
    ],
    ids=["plain", "increasing", "decreasing", "repeated", "missing-run", "exponent"],
)
def test_expand_values_notation(text: str, expected: list[float | None]) -> None:
    assert expand_values(text) == expected


def test_expand_values_stale_is_nan() -> None:
    values = expand_values("1 stale")
    assert values[0] == 1.0
    assert values[1] is not None and math.isnan(values[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 x3", r"Invalid value 'x3'; write a number, a\+bxn"),
        ("nan", r"Invalid value 'nan'; write stale"),
        ("1+x3", r"Invalid value '1\+x3'"),
    ],
    ids=["bare-repeat", "nan", "missing-increment"],
)
def test_expand_values_invalid(text: str, message: str) -> None:
    with pytest.raises(NotationError, match=message):
        expand_values(text)


def test_parse_series_labels() -> None:
    key = parse_series('orders{region="eu", channel="web \\"x\\""}')
    assert key == SeriesKey("orders", (("channel", 'web "x"'), ("region", "eu")))
    assert parse_series("orders") == SeriesKey("orders")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9orders", r"Invalid series '9orders'"),
        ("orders{region=eu}", r"Invalid labels in series"),
        ('orders{a="1",a="2"}', r"Label 'a' is repeated"),
    ],
    ids=["bad-name", "unquoted-value", "repeated-label"],
)
def test_parse_series_invalid(text: str, message: str) -> None:
    with pytest.raises(NotationError, match=message):
        parse_series(text)


def test_example_rule_tests_pass() -> None:
    result = run_test_file(EXAMPLES / "tests" / "example_test.yaml")
    assert result.problems == []
    assert [str(failure) for failure in result.failures] == []
    assert result.checks == 11


RULES = """\
groups:
  - name: shop
    interval: 1m
    rules:
      - alert: OrdersLow
        expr: kpi("orders") < 10
        for: 2m
        labels: {severity: page}
        annotations:
          summary: "Orders in {{ labels.region }} fell to {{ value }}."
      - alert: DeliveryLate
        expr: kpi("delivery_delay") > 5
        inhibit_when_upstream_firing: true
      - alert: GoalMiss
        key_results: [orders_week]
        attainment_below: 0.5
"""


def write_test(tmp_path: Path, tests: str, extra: str = "") -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "rules_test.yaml"
    path.write_text(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\n"
        + textwrap.dedent(extra)
        + "tests:\n"
        + textwrap.indent(textwrap.dedent(tests), "  ")
    )
    return path


FAILING = """\
- name: orders fall in eu
  input_series:
    - series: 'orders{region="eu"}'
      values: 20 5x5
    - series: 'orders{region="us"}'
      values: 20x6
  alert_rule_test:
    - eval_time: 3m
      alertname: OrdersLow
      exp_alerts:
        - exp_labels: {severity: page, region: eu}
          exp_annotations:
            summary: Orders in eu fell to 5.0.
    - eval_time: 2m
      alertname: OrdersLow
      exp_alerts:
        - exp_labels: {severity: page, region: us}
"""


def test_run_test_file_failing_check_diff(tmp_path: Path) -> None:
    result = run_test_file(write_test(tmp_path, FAILING))
    assert result.problems == []
    assert result.checks == 2
    assert len(result.failures) == 1
    text = str(result.failures[0])
    assert text.startswith(
        f"{tmp_path / 'rules_test.yaml'}:17: tests[0] (orders fall in eu)."
        "alert_rule_test[1]: alertname OrdersLow at eval_time 2m: the firing "
        "alerts differ from exp_alerts.\n"
    )
    assert text.splitlines()[1:] == [
        "    --- expected",
        "    +++ actual",
        "    @@ -1,3 +1 @@",
        "    -- labels:",
        "    -    region: us",
        "    -    severity: page",
        "    +(no firing alerts)",
    ]


def test_run_test_file_annotation_mismatch(tmp_path: Path) -> None:
    tests = FAILING.replace("fell to 5.0.", "fell to 4.")
    result = run_test_file(write_test(tmp_path, tests))
    diffs = [str(failure) for failure in result.failures]
    assert len(diffs) == 2
    # Checks run in eval_time order, so the 3m check fails second.
    assert "    -    summary: Orders in eu fell to 4." in diffs[1]
    assert "    +    summary: Orders in eu fell to 5.0." in diffs[1]


def test_run_test_file_inhibits_downstream(tmp_path: Path) -> None:
    extra = """\
    kpis:
      - name: orders
        drives: [{kpi: delivery_delay, lag: 1d}]
      - name: delivery_delay
    key_results:
      - {name: orders_week, kpi: orders, measure: level, direction: increase,
         baseline: 0, target: 100, period: week}
    """
    tests = """\
    - input_series:
        - series: orders
          values: 20 5x9
        - series: delivery_delay
          values: 1 1 1 9x7
      alert_rule_test:
        - eval_time: 4m
          alertname: DeliveryLate
          exp_alerts:
            - exp_annotations:
                root_cause: OrdersLow{severity=page} fires on KPI 'orders', upstream of 'delivery_delay'.
    """
    path = write_test(tmp_path, tests, extra)
    result = run_test_file(path)
    assert result.problems == []
    assert [str(failure) for failure in result.failures] == []


def test_run_test_file_key_result_status(tmp_path: Path) -> None:
    extra = """\
    key_results:
      - name: orders_week
        kpi: orders
        measure: level
        direction: increase
        baseline: 0
        target: 100
        period: week
    """
    tests = """\
    - input_series:
        - series: orders
          values: 20x3
      key_result_test:
        - eval_time: 3m
          key_result: orders_week
          exp_status: on_track
          exp_progress: 0.2
    """
    result = run_test_file(write_test(tmp_path, tests, extra))
    assert result.problems == []
    assert len(result.failures) == 1
    lines = str(result.failures[0]).splitlines()
    assert "key result orders_week at eval_time 3m" in lines[0]
    assert "    -status: on_track" in lines
    assert "    +status: insufficient_data" in lines
    assert "     progress: '0.2000'" in lines


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "rule_files: [rules.yaml]\ntests: [{nmae: x}]\n",
            r"tests\[0\]\.nmae: Unknown key 'nmae'\. Did you mean 'name'\?",
        ),
        ("rule_files: [missing.yaml]\n", r"'missing.yaml' matches no file"),
        (
            "rule_files: [rules.yaml]\ntests:\n  - input_series: [{series: x, values: '1 y'}]\n",
            r":3: tests\[0\]: Invalid value 'y'",
        ),
        ("rule_files: [rules.yaml]\n", r"bad_test.yaml:1: the file has no checks"),
        (
            "rule_files: [rules.yaml]\ntests:\n  - input_series: []\n",
            r"no checks; add tests with alert_rule_test or key_result_test",
        ),
    ],
    ids=["unknown-key", "missing-rule-file", "bad-values", "no-tests", "no-checks"],
)
def test_run_test_file_problems(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "bad_test.yaml"
    path.write_text(content)
    result = run_test_file(path)
    assert not result.passed
    assert len(result.problems) == 1
    assert re.search(message, result.problems[0]), result.problems


def test_cli_test_rules_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "rules", str(EXAMPLES / "tests" / "example_test.yaml")]) == 0
    assert "SUCCESS, 11 of 11 checks passed." in capsys.readouterr().out
    assert main(["test", "rules", str(write_test(tmp_path, FAILING))]) == 1
    output = capsys.readouterr().out
    assert output.startswith("FAILED ")
    assert "FAILED, 1 of 2 checks passed." in output


def test_run_test_file_renders_kpi_fields(tmp_path: Path) -> None:
    rules = RULES.replace(
        'summary: "Orders in {{ labels.region }} fell to {{ value }}."',
        'summary: "{{ alert }} on {{ kpi.name }}: {{ kpi.labels.region }}."',
    )
    tests = """\
    - input_series:
        - series: 'orders{region="eu"}'
          values: 5x3
      alert_rule_test:
        - eval_time: 3m
          alertname: OrdersLow
          exp_alerts:
            - exp_labels: {severity: page, region: eu}
              exp_annotations: {summary: "OrdersLow on orders: eu."}
    """
    path = write_test(tmp_path, tests)
    (tmp_path / "rules.yaml").write_text(rules)
    result = run_test_file(path)
    assert result.problems == []
    assert [str(failure) for failure in result.failures] == []


def test_run_test_file_problems_sorted_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad_test.yaml"
    path.write_text(
        'rule_files: [rules.yaml]\ntests:\n  - input_series:\n      - values: "1"\n'
        "        bogus: 1\n"
    )

    problems = run_test_file(path).problems

    assert [problem.split(":")[1] for problem in problems] == ["4", "5"]
    assert "Missing required key 'series'" in problems[0]
