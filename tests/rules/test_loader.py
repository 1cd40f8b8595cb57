"""Tests of the rule file loader."""

from __future__ import annotations

import importlib.util
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import ConfigError
from rules.loader import load_rule_file, load_rule_files
from rules.model import ForecastRule, Location, ThresholdRule

HAS_EXPR = importlib.util.find_spec("rules.expr") is not None
needs_expr = pytest.mark.skipif(
    not HAS_EXPR, reason="the expression parser rules.expr is not written yet"
)

VALID = """\
groups:
  - name: retention
    interval: 1h
    rules:
      - alert: ChurnHigh
        expr: kpi("churn") > 0.05
        for: 2d
        keep_firing_for: 1h
        labels: {severity: critical}
        annotations:
          summary: Churn is high.
        no_data: alerting
      - alert: ChurnForecastMiss
        key_results: [churn_q1]
        attainment_below: 0.7
        clear_margin: 0.05
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str, name: str = "rules.yaml") -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(text: str, **names: list[str]) -> list[str]:
    write(text)
    with pytest.raises(ConfigError) as raised:
        load_rule_file("rules.yaml", **names)
    return raised.value.problems


def test_load_rule_file_valid_groups() -> None:
    write(VALID)

    groups = load_rule_file("rules.yaml")

    assert len(groups) == 1
    group = groups[0]
    assert group.name == "retention"
    assert group.interval == timedelta(hours=1)
    assert group.location == Location(path=Path("rules.yaml"), line=2)
    threshold, forecast = group.rules
    assert isinstance(threshold, ThresholdRule)
    assert threshold.for_ == timedelta(days=2)
    assert threshold.keep_firing_for == timedelta(hours=1)
    assert threshold.labels == {"severity": "critical"}
    assert threshold.annotations == {"summary": "Churn is high."}
    assert threshold.no_data == "alerting"
    assert threshold.location.line == 5
    assert isinstance(forecast, ForecastRule)
    assert forecast.key_results == ("churn_q1",)
    assert forecast.attainment_below == 0.7
    assert forecast.clear_margin == 0.05


@needs_expr
def test_load_rule_file_parses_expression() -> None:
    from rules import expr

    write(VALID)

    rule = load_rule_file("rules.yaml")[0].rules[0]

    assert isinstance(rule, ThresholdRule)
    assert rule.expression == expr.parse('kpi("churn") > 0.05')


def test_load_rule_file_for_zero_fires_at_once() -> None:
    write(VALID.replace("for: 2d", "for: 0"))

    rule = load_rule_file("rules.yaml")[0].rules[0]

    assert rule.for_ == timedelta(0)


# Each case: a replacement in VALID and the one problem it must produce.
PROBLEM_CASES = [
    pytest.param(
        ("        for: 2d\n", "        for: 2 days\n"),
        "rules.yaml:7: groups[0].rules[0].for: Invalid duration '2 days'; write a "
        "number and a unit, such as 30s, 5m, 1h30m, 7d or 2w.",
        id="invalid-for",
    ),
    pytest.param(
        ("        for: 2d\n", "        fro: 2d\n"),
        "rules.yaml:7: groups[0].rules[0].fro: Unknown key 'fro'. Did you mean 'for'?",
        id="unknown-rule-key",
    ),
    pytest.param(
        ("    interval: 1h\n", "    intervl: 1h\n"),
        "rules.yaml:3: groups[0].intervl: Unknown key 'intervl'. Did you mean "
        "'interval'?",
        id="unknown-group-key",
    ),
    pytest.param(
        ("    interval: 1h\n", "    interval: 0s\n"),
        "rules.yaml:3: groups[0].interval: The interval must be greater than zero; "
        "write a value such as 1m.",
        id="zero-interval",
    ),
    pytest.param(
        ("groups:\n", "group:\n"),
        "rules.yaml:1: group: Unknown key 'group'. Did you mean 'groups'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        ("        no_data: alerting\n", "        no_data: alert\n"),
        "rules.yaml:12: groups[0].rules[0].no_data: Invalid value 'alert'. Did you "
        "mean 'alerting'? The allowed values are ok, alerting, keep_state.",
        id="no-data-choice",
    ),
    pytest.param(
        ("        attainment_below: 0.7\n", "        attainment_below: 1.5\n"),
        "rules.yaml:15: groups[0].rules[1].attainment_below: attainment_below is "
        "1.5; write a probability between 0 and 1, exclusive, such as 0.7.",
        id="attainment-out-of-range",
    ),
    pytest.param(
        ("        attainment_below: 0.7\n", "        attainment_below: 0\n"),
        "rules.yaml:15: groups[0].rules[1].attainment_below: attainment_below is "
        "0; write a probability between 0 and 1, exclusive, such as 0.7.",
        id="attainment-zero",
    ),
    pytest.param(
        ("        clear_margin: 0.05\n", "        clear_margin: 0.3\n"),
        "rules.yaml:16: groups[0].rules[1].clear_margin: clear_margin is 0.3; write "
        "a value from 0 up to, but not including, 0.3, so that the alert can clear.",
        id="clear-margin-too-large",
    ),
    pytest.param(
        ("        key_results: [churn_q1]\n", "        key_results: []\n"),
        "rules.yaml:14: groups[0].rules[1].key_results: The list of key results is "
        "empty; name at least one key result.",
        id="forecast-without-key-results",
    ),
    pytest.param(
        ("        attainment_below: 0.7\n", ""),
        "rules.yaml:13: groups[0].rules[1].attainment_below: Missing required key "
        "'attainment_below'.",
        id="forecast-missing-threshold",
    ),
    pytest.param(
        ("        labels: {severity: critical}\n", "        labels: {se-verity: x}\n"),
        "rules.yaml:9: groups[0].rules[0].labels.se-verity: Invalid label name "
        "'se-verity'; use letters, digits and underscores, not starting with a "
        "digit.",
        id="invalid-label-name",
    ),
    pytest.param(
        ("        labels: {severity: critical}\n", "        labels: [critical]\n"),
        "rules.yaml:9: groups[0].rules[0].labels: Expected a mapping, got a list. "
        "Write it as {key: value, ...}.",
        id="labels-as-list",
    ),
    pytest.param(
        ("      - alert: ChurnForecastMiss\n", "      - alert: ChurnHigh\n"),
        "rules.yaml:13: groups[0].rules[1].alert: Duplicate alert name 'ChurnHigh' "
        "in this group; it is also used at line 5. Give each rule of a group a "
        "unique alert name.",
        id="duplicate-alert",
    ),
    pytest.param(
        ('        expr: kpi("churn") > 0.05\n', "        expr: ''\n"),
        "rules.yaml:6: groups[0].rules[0].expr: The expression is empty; write a "
        'condition such as kpi("orders") < 100.',
        id="empty-expression",
    ),
    pytest.param(
        ("        annotations:\n", "        annotations: ${SUMMARY}\n        x:\n"),
        "rules.yaml:10: groups[0].rules[0].annotations: Expected a mapping, got "
        "'${SUMMARY}'. Write it as {key: value, ...}.",
        id="annotations-scalar",
    ),
    pytest.param(
        ("          summary: Churn is high.\n", "          summary: ${SUMMARY}\n"),
        "rules.yaml:11: groups[0].rules[0].annotations.summary: This field does not "
        "accept environment references such as ${NAME}; write the value itself, or "
        "write $${NAME} for the literal text.",
        id="reference-in-annotation",
    ),
]


@pytest.mark.parametrize(("change", "expected"), PROBLEM_CASES)
def test_load_rule_file_reports_problem(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in VALID

    problems = problems_of(VALID.replace(old, new, 1))

    assert problems[0] == expected


@pytest.mark.parametrize(
    ("change", "expected_start"),
    [
        pytest.param(
            (
                '        expr: kpi("churn") > 0.05\n',
                '        expr: kpi("churn") > 0.05\n        key_results: [a]\n',
            ),
            "rules.yaml:5: groups[0].rules[0]: The rule mixes the keys of threshold "
            "and forecast rules; keep the keys of one kind: ",
            id="mixed-kinds",
        ),
        pytest.param(
            ('        expr: kpi("churn") > 0.05\n', ""),
            "rules.yaml:5: groups[0].rules[0]: The rule matches no kind; write the "
            "keys of one kind: ",
            id="no-kind",
        ),
    ],
)
def test_load_rule_file_rule_kind_problem(
    change: tuple[str, str], expected_start: str
) -> None:
    old, new = change

    problems = problems_of(VALID.replace(old, new, 1))

    assert len(problems) == 1
    assert problems[0].startswith(expected_start)
    assert "threshold (expr)" in problems[0]
    assert "forecast (attainment_below and key_results)" in problems[0]


def test_load_rule_file_lists_every_problem() -> None:
    text = VALID.replace("for: 2d", "for: 2 days").replace("0.7", "7")

    problems = problems_of(text)

    assert len(problems) == 2
    assert problems[0].startswith("rules.yaml:7: groups[0].rules[0].for:")
    assert problems[1].startswith("rules.yaml:15: groups[0].rules[1].attainment_below:")


def test_load_rule_file_duplicate_group_name() -> None:
    text = VALID + "  - name: retention\n    rules: []\n"

    problems = problems_of(text)

    assert problems == [
        "rules.yaml:17: groups[1].name: Duplicate group name 'retention'; it is "
        "also used at line 2. Give each group a unique name."
    ]


def test_load_rule_file_unknown_key_result() -> None:
    problems = problems_of(VALID, key_results=["churn_q2"])

    assert problems == [
        "rules.yaml:14: groups[0].rules[1].key_results[0]: Unknown key result "
        "'churn_q1'. Did you mean 'churn_q2'? The key results are churn_q2."
    ]


def test_load_rule_file_not_a_mapping() -> None:
    problems = problems_of("- name: x\n")

    assert problems == [
        "rules.yaml:1: Expected a mapping with the key 'groups', got a list."
    ]


def test_load_rule_file_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"^missing.yaml:1: File not found"):
        load_rule_file("missing.yaml")


def test_load_rule_file_syntax_error() -> None:
    write("groups:\n  - name: [\n")

    with pytest.raises(ConfigError, match=r"^rules.yaml:3:1: Invalid YAML: "):
        load_rule_file("rules.yaml")


EXPRESSION_CASES = [
    pytest.param(
        '        expr: kpi("churn") > )\n',
        "rules.yaml:6:30: groups[0].rules[0].expr: {message}\n"
        '            expr: kpi("churn") > )\n'
        "                                 ^",
        id="plain",
    ),
    pytest.param(
        "        expr: 'kpi(\"churn\") > )'\n",
        "rules.yaml:6:31: groups[0].rules[0].expr: {message}\n"
        "            expr: 'kpi(\"churn\") > )'\n"
        "                                  ^",
        id="single-quoted",
    ),
    pytest.param(
        '        expr: |\n          kpi("churn")\n            > )\n',
        "rules.yaml:8:15: groups[0].rules[0].expr: {message}\n"
        "                > )\n"
        "                  ^",
        id="literal-block",
    ),
    pytest.param(
        '        expr: >\n          kpi("churn")\n          > )\n',
        "rules.yaml:8:13: groups[0].rules[0].expr: {message}\n"
        "              > )\n"
        "                ^",
        id="folded-block",
    ),
    pytest.param(
        '        expr: kpi("churn") >\n          )\n',
        "rules.yaml:7:11: groups[0].rules[0].expr: {message}\n"
        "              )\n"
        "              ^",
        id="plain-multiline",
    ),
]


@needs_expr
@pytest.mark.parametrize(("expr_lines", "expected"), EXPRESSION_CASES)
def test_load_rule_file_expression_error_caret(expr_lines: str, expected: str) -> None:
    from rules import expr

    text = VALID.replace('        expr: kpi("churn") > 0.05\n', expr_lines)
    with pytest.raises(expr.ExpressionError) as parse_error:
        expr.parse('kpi("churn") > )')

    problems = problems_of(text)

    assert problems[0] == expected.format(message=parse_error.value.message)


@needs_expr
def test_load_rule_file_expression_unknown_kpi() -> None:
    problems = problems_of(VALID, kpis=["churn_rate"])

    assert len(problems) == 1
    assert problems[0].startswith("rules.yaml:6:15: groups[0].rules[0].expr: ")
    assert "'churn'" in problems[0]
    assert problems[0].endswith('expr: kpi("churn") > 0.05\n' + " " * 18 + "^")


CONFIG = """\
sources: [{name: s, type: csv}]
kpis: [{name: churn, source: s}]
objectives:
  - name: keep
    owner: care
    key_results:
      - {name: churn_q1, kpi: churn, measure: level, direction: decrease,
         baseline: 0.1, target: 0.05, period: quarter}
rule_files: [rules/*.yaml]
"""


class _NoSettings:
    settings_class = None
    query_class = None


def _config(tmp_path: Path) -> Config:
    write(CONFIG, "config.yaml")
    return load_config(
        tmp_path / "config.yaml",
        environ={},
        source_types={"csv": _NoSettings},
        receiver_types={},
    )


def test_load_rule_files_from_config_globs(tmp_path: Path) -> None:
    write(VALID, "rules/a.yaml")
    write(VALID.replace("name: retention", "name: other"), "rules/b.yaml")
    config = _config(tmp_path)

    groups = load_rule_files(config)

    assert [group.name for group in groups] == ["retention", "other"]
    assert groups[1].location.path == tmp_path / "rules" / "b.yaml"


def test_load_rule_files_duplicate_group_across_files(tmp_path: Path) -> None:
    write(VALID, "rules/a.yaml")
    write(VALID, "rules/b.yaml")
    config = _config(tmp_path)

    with pytest.raises(ConfigError) as raised:
        load_rule_files(config)

    assert raised.value.problems == [
        "rules/b.yaml:2: groups[0].name: Duplicate group name 'retention'; it is "
        "also used at rules/a.yaml:2. Give each group a unique name."
    ]


def test_load_rule_files_checks_key_results_of_config(tmp_path: Path) -> None:
    write(VALID.replace("[churn_q1]", "[churn_q9]"), "rules/a.yaml")
    config = _config(tmp_path)

    with pytest.raises(ConfigError) as raised:
        load_rule_files(config)

    assert raised.value.problems == [
        "rules/a.yaml:14: groups[0].rules[1].key_results[0]: Unknown key result "
        "'churn_q9'. Did you mean 'churn_q1'? The key results are churn_q1."
    ]


EXAMPLE_RULES = (
    Path(__file__).resolve().parents[2] / "examples" / "rules" / "example.yaml"
)


def test_load_rule_file_shipped_example() -> None:
    groups = load_rule_file(
        EXAMPLE_RULES,
        kpis=["taxi_trips", "ad_cost_per_click", "brand_mentions"],
        key_results=["weekly_passengers", "cost_per_click_ceiling"],
    )

    assert [group.name for group in groups] == ["ridership", "marketing"]
    assert [rule.alert for rule in groups[0].rules] == [
        "TaxiDemandCollapsed",
        "RidershipKeyResultForecastMiss",
    ]


def test_load_rule_file_rejects_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("# every rule was deleted\n")
    with pytest.raises(
        ConfigError, match=r"rules.yaml:1: The rule file is empty; add a 'groups:' list"
    ):
        load_rule_file(path)


# Each line number is the line of the problem in MANY_PROBLEMS.
MANY_PROBLEMS = """\
groups:
  - name: g1
    interval: 0
    colour: red
    rules:
      - alert: Syntax
        expr: kpi("churn") >
      - alert: Syntax
        expr: kpi("churn") > (
        labels: {9bad: x}
      - alert: Depends
        when: kpi("churn") > 1
        require: kpi("churn") <
        match_on: [a]
        match_ignoring: [b]
      - alert: Anomaly
        kpi: churm
        detector: {type: robust_z}
        match_re: {team: "("}
        no_data: never
      - alert: Forecast
        key_results: [churn_q9]
        attainment_below: 2
        annotations: {summary: "{{ $value "}
        for: 5 x
  - name: g1
    interval: 5 x
    rules: []
  - name: g2
    interval: 0
    rules:
      - {alert: Fine, expr: kpi("churn") > 1, for: 5 x}
      - alert: Fine
        expr: kpi("churn") > 1
        kpi: churn
        for: 5 x
        colr: red
        labels: {9bad: x}
"""

# Each case: the problem prefix "file:line: field.path:" and a part of its message.
MANY_RULE_PROBLEMS = [
    pytest.param(
        "rules.yaml:3: groups[0].interval:", "greater than zero", id="g1-interval"
    ),
    pytest.param("rules.yaml:4: groups[0].colour:", "Unknown key", id="g1-unknown-key"),
    pytest.param(
        "rules.yaml:7:29: groups[0].rules[0].expr:",
        "end of the expression",
        id="syntax-first",
    ),
    pytest.param(
        "rules.yaml:8: groups[0].rules[1].alert:",
        "Duplicate alert name 'Syntax'",
        id="duplicate-alert",
    ),
    pytest.param("rules.yaml:9:31: groups[0].rules[1].expr:", "", id="syntax-second"),
    pytest.param(
        "rules.yaml:10: groups[0].rules[1].labels.9bad:",
        "Invalid label name",
        id="label-beside-syntax",
    ),
    pytest.param(
        "rules.yaml:13:32: groups[0].rules[2].require:", "", id="require-syntax"
    ),
    pytest.param(
        "rules.yaml:15: groups[0].rules[2].match_ignoring:",
        "exclude each other",
        id="match-beside-syntax",
    ),
    pytest.param(
        "rules.yaml:17: groups[0].rules[3].kpi:",
        "Unknown KPI 'churm'",
        id="anomaly-kpi-beside-bad-policy",
    ),
    pytest.param(
        "rules.yaml:19: groups[0].rules[3].match_re.team:",
        "Invalid regular expression",
        id="anomaly-regex-beside-bad-policy",
    ),
    pytest.param(
        "rules.yaml:20: groups[0].rules[3].no_data:",
        "Invalid value 'never'",
        id="bad-policy",
    ),
    pytest.param(
        "rules.yaml:22: groups[0].rules[4].key_results[0]:",
        "Unknown key result 'churn_q9'",
        id="forecast-key-result-beside-bad-for",
    ),
    pytest.param(
        "rules.yaml:23: groups[0].rules[4].attainment_below:",
        "attainment_below is 2",
        id="attainment-beside-bad-for",
    ),
    pytest.param(
        "rules.yaml:24: groups[0].rules[4].annotations.summary:",
        "",
        id="annotation-beside-bad-for",
    ),
    pytest.param(
        "rules.yaml:25: groups[0].rules[4].for:",
        "Invalid duration '5 x'",
        id="forecast-bad-for",
    ),
    pytest.param(
        "rules.yaml:26: groups[1].name:",
        "Duplicate group name 'g1'",
        id="duplicate-group",
    ),
    pytest.param(
        "rules.yaml:27: groups[1].interval:",
        "Invalid duration '5 x'",
        id="duplicate-group-interval",
    ),
    pytest.param(
        "rules.yaml:30: groups[2].interval:",
        "greater than zero",
        id="g2-interval-beside-bad-rule",
    ),
    pytest.param(
        "rules.yaml:32: groups[2].rules[0].for:",
        "Invalid duration '5 x'",
        id="g2-bad-for",
    ),
    pytest.param(
        "rules.yaml:33: groups[2].rules[1]:",
        "The rule mixes the keys of threshold and anomaly rules",
        id="mixed-kinds",
    ),
    pytest.param(
        "rules.yaml:33: groups[2].rules[1].alert:",
        "Duplicate alert name 'Fine'",
        id="duplicate-alert-of-mixed-kinds",
    ),
    pytest.param(
        "rules.yaml:36: groups[2].rules[1].for:",
        "Invalid duration '5 x'",
        id="bad-for-beside-mixed-kinds",
    ),
    pytest.param(
        "rules.yaml:37: groups[2].rules[1].colr:",
        "Unknown key 'colr'",
        id="unknown-key-beside-mixed-kinds",
    ),
    pytest.param(
        "rules.yaml:38: groups[2].rules[1].labels.9bad:",
        "Invalid label name '9bad'",
        id="label-beside-mixed-kinds",
    ),
]


def many_problems() -> list[str]:
    return problems_of(MANY_PROBLEMS, kpis=["churn"], key_results=["churn_q1"])


@needs_expr
@pytest.mark.parametrize(("prefix", "fragment"), MANY_RULE_PROBLEMS)
def test_load_rule_file_reports_each_problem(prefix: str, fragment: str) -> None:
    problems = many_problems()
    matching = [problem for problem in problems if problem.startswith(prefix + " ")]

    assert len(matching) == 1, f"{prefix} in {problems}"
    assert fragment in matching[0]


@needs_expr
def test_load_rule_file_reports_nothing_else() -> None:
    expected = [str(case.values[0]) for case in MANY_RULE_PROBLEMS]
    problems = many_problems()
    unexpected = [
        problem
        for problem in problems
        if not any(problem.startswith(prefix + " ") for prefix in expected)
    ]

    assert unexpected == []
    assert len(problems) == len(expected)


def test_load_rule_files_invalid_group_duplicate(tmp_path: Path) -> None:
    write(VALID.replace("interval: 1h", "interval: 5 x"), "rules/a.yaml")
    write(VALID, "rules/b.yaml")
    config = _config(tmp_path)

    with pytest.raises(ConfigError) as raised:
        load_rule_files(config)

    assert [problem.split(" ")[0] for problem in raised.value.problems] == [
        "rules/a.yaml:3:",
        "rules/b.yaml:2:",
    ]
    assert "Duplicate group name 'retention'" in raised.value.problems[1]
