"""Tests that one run of check_files lists every problem of a file.

A section with one invalid field must still have its other fields and its
cross-references checked, so each file below holds many problems, several
of them in the same section, and every one must appear in a single run.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from monitor.config import check_files

# Each line number is the line of the problem in CONFIG.
CONFIG = """\
server:
  listen: localhost
  api_token: ${KRWATCH_TEST_UNSET_TOKEN}
storage:
  retention: 0
  window: 5 min
sources:
  - name: shop
    type: csv
    path: orders.csv
    interval: 0
    colour: red
kpis:
  - name: orders
    source: shop
    stale_after: 0
    drives: [{kpi: orders}, {kpi: nope, lag: 5 x}]
objectives:
  - name: grow
    key_results:
      - name: more_orders
        kpi: orderz
        measure: level
        direction: increase
        baseline: 10
        target: 5
        period: quarter
receivers:
  - name: ops
    type: log
route:
  receiver: opz
  continue: no
  match_re: {a: "("}
  routes:
    - receiver: nobody
      group_wait: 5 x
rule_files: [rules.yaml, missing.yaml]
"""

RULES = """\
groups:
  - name: g1
    interval: 0
    rules:
      - alert: Syntax
        expr: kpi("orders") > 1
        for: 5 x
      - alert: Syntax
        expr: kpi("orders") > 2
        labels: {9bad: x}
      - alert: Forecast
        key_results: [more_orders]
        attainment_below: 2
        colour: red
  - name: g1
    rules:
      - alert: Other
        expr: kpi("orders") > 1
"""

# Each case: the problem prefix "file:line: field.path:" and a part of its message.
CONFIG_PROBLEMS = [
    pytest.param(
        "config.yaml:2: server.listen:",
        "Invalid listen address 'localhost'",
        id="listen-beside-unset-token",
    ),
    pytest.param(
        "config.yaml:3: server.api_token:",
        "'KRWATCH_TEST_UNSET_TOKEN' is not set",
        id="unset-token",
    ),
    pytest.param(
        "config.yaml:5: storage.retention:",
        "must be greater than zero",
        id="zero-retention-beside-bad-window",
    ),
    pytest.param(
        "config.yaml:6: storage.window:",
        "Invalid duration '5 min'",
        id="bad-window",
    ),
    pytest.param(
        "config.yaml:11: sources[0].interval:",
        "must be greater than zero",
        id="zero-source-interval-beside-unknown-key",
    ),
    pytest.param(
        "config.yaml:12: sources[0].colour:",
        "Unknown key 'colour'",
        id="unknown-source-key",
    ),
    pytest.param(
        "config.yaml:16: kpis[0].stale_after:",
        "must be greater than zero",
        id="zero-stale-after-beside-bad-edge",
    ),
    pytest.param(
        "config.yaml:17: kpis[0].drives[0].kpi:",
        "KPI 'orders' drives itself",
        id="self-edge-beside-bad-edge",
    ),
    pytest.param(
        "config.yaml:17: kpis[0].drives[1].kpi:",
        "Unknown KPI 'nope'",
        id="unknown-edge-target-beside-bad-lag",
    ),
    pytest.param(
        "config.yaml:17: kpis[0].drives[1].lag:",
        "Invalid duration '5 x'",
        id="bad-edge-lag",
    ),
    pytest.param(
        "config.yaml:21: objectives[0].key_results[0].owner:",
        "Missing owner",
        id="missing-owner",
    ),
    pytest.param(
        "config.yaml:22: objectives[0].key_results[0].kpi:",
        "Unknown KPI 'orderz'",
        id="unknown-key-result-kpi-beside-missing-owner",
    ),
    pytest.param(
        "config.yaml:26: objectives[0].key_results[0].target:",
        "The target 5 is below the baseline 10",
        id="target-below-baseline-beside-missing-owner",
    ),
    pytest.param(
        "config.yaml:32: route.receiver:",
        "Unknown receiver 'opz'",
        id="unknown-route-receiver-beside-bad-boolean",
    ),
    pytest.param(
        "config.yaml:33: route.continue:",
        "Invalid boolean 'no'",
        id="bad-route-boolean",
    ),
    pytest.param(
        "config.yaml:34: route.match_re.a:",
        "Invalid regular expression '('",
        id="route-regex-beside-bad-boolean",
    ),
    pytest.param(
        "config.yaml:36: route.routes[0].receiver:",
        "Unknown receiver 'nobody'",
        id="child-route-receiver-beside-bad-duration",
    ),
    pytest.param(
        "config.yaml:37: route.routes[0].group_wait:",
        "Invalid duration '5 x'",
        id="bad-child-route-duration",
    ),
    pytest.param(
        "config.yaml:38: rule_files[1]:",
        "Rule file 'missing.yaml' not found",
        id="missing-rule-file",
    ),
]

RULE_PROBLEMS = [
    pytest.param(
        "rules.yaml:3: groups[0].interval:",
        "must be greater than zero",
        id="zero-group-interval-beside-bad-rules",
    ),
    pytest.param(
        "rules.yaml:7: groups[0].rules[0].for:",
        "Invalid duration '5 x'",
        id="bad-rule-duration",
    ),
    pytest.param(
        "rules.yaml:8: groups[0].rules[1].alert:",
        "Duplicate alert name 'Syntax'",
        id="duplicate-alert-of-invalid-rule",
    ),
    pytest.param(
        "rules.yaml:10: groups[0].rules[1].labels.9bad:",
        "Invalid label name '9bad'",
        id="bad-label-name",
    ),
    pytest.param(
        "rules.yaml:13: groups[0].rules[2].attainment_below:",
        "attainment_below is 2",
        id="attainment-beside-unknown-key",
    ),
    pytest.param(
        "rules.yaml:14: groups[0].rules[2].colour:",
        "Unknown key 'colour'",
        id="unknown-rule-key",
    ),
    pytest.param(
        "rules.yaml:15: groups[1].name:",
        "Duplicate group name 'g1'",
        id="duplicate-group-of-invalid-group",
    ),
]


@pytest.fixture(scope="module")
def problems(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("all_problems")
    (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    (folder / "orders.csv").write_text("timestamp,value\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(folder)
        return check_files("config.yaml", environ={})


@pytest.mark.parametrize(("prefix", "fragment"), CONFIG_PROBLEMS + RULE_PROBLEMS)
def test_check_files_reports_each_problem(
    problems: list[str], prefix: str, fragment: str
) -> None:
    matching = [problem for problem in problems if problem.startswith(prefix + " ")]

    assert len(matching) == 1, f"{prefix} in {problems}"
    assert fragment in matching[0]


def test_check_files_reports_nothing_else(problems: list[str]) -> None:
    expected = [str(case.values[0]) for case in CONFIG_PROBLEMS + RULE_PROBLEMS]
    unexpected = [
        problem
        for problem in problems
        if not any(problem.startswith(prefix + " ") for prefix in expected)
    ]

    assert unexpected == []
    assert len(problems) == len(expected)


def test_check_files_reads_valid_rule_file_entries(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "rule_files: [rules.yaml, {name: x}]\n", encoding="utf-8"
    )
    (tmp_path / "rules.yaml").write_text("groups: {}\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)
        problems = check_files("config.yaml", environ={})

    assert [problem.split(" ")[0] for problem in problems] == [
        "config.yaml:1:",
        "rules.yaml:1:",
    ]
    assert problems[0].startswith("config.yaml:1: rule_files[1]: Expected a string")
    assert problems[1].startswith("rules.yaml:1: groups: Expected a list")


# Values that fail to read in most fields, so that checks meet partial values.
MUTATION_VALUES = [
    "{}",
    "[]",
    "[{}]",
    "[1, {a: 1}]",
    "{a: {}}",
    "5 x",
    "0",
    "-1",
    "",
    "null",
    "${KRWATCH_TEST_UNSET_TOKEN}",
    "'('",
]


def _mutate(text: str, rng: random.Random) -> str:
    """Replace the values of a few lines of ``text``, or delete the lines."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 6)):
        index = rng.randrange(len(lines))
        key, colon, _ = lines[index].partition(":")
        if colon and rng.random() < 0.8:
            lines[index] = f"{key}: {rng.choice(MUTATION_VALUES)}"
        else:
            del lines[index]
    return "\n".join(lines) + "\n"


def test_check_files_mutated_files_never_raise(tmp_path: Path) -> None:
    rng = random.Random(20250106)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)
        for attempt in range(200):
            config = _mutate(CONFIG, rng)
            rules = _mutate(RULES, rng)
            Path("config.yaml").write_text(config, encoding="utf-8")
            Path("rules.yaml").write_text(rules, encoding="utf-8")

            try:
                problems = check_files("config.yaml", environ={})
            except Exception as error:
                pytest.fail(f"Attempt {attempt} raised {error!r}:\n{config}\n{rules}")

            assert problems, f"Attempt {attempt} reported nothing:\n{config}"
