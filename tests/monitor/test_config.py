"""Tests of load_config: mapping, type-specific settings and cross checks."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import check_files, load_config, resolve_rule_files
from monitor.config.model import Config
from monitor.errors import ConfigError
from monitor.secrets import Secret


@dataclass(frozen=True, kw_only=True)
class ReplaySettings:
    start: datetime
    speed: float = 1.0


@dataclass(frozen=True, kw_only=True)
class FileSettings:
    path: Path
    timezone: str = "UTC"
    replay: ReplaySettings | None = None


@dataclass(frozen=True, kw_only=True)
class FileQuery:
    value_column: str = "value"
    label_columns: tuple[str, ...] = ()


class FileSource:
    settings_class = FileSettings
    query_class = FileQuery


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    url: Secret
    headers: Mapping[str, Secret] = field(default_factory=dict)
    max_attempts: int = 3


@dataclass(frozen=True, kw_only=True)
class ApiQuery:
    value: str


class ApiSource:
    settings_class = ApiSettings
    query_class = ApiQuery


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    path: str = "stdout"


class LogReceiver:
    settings_class = LogSettings


SOURCE_TYPES = {"csv": FileSource, "http_json": ApiSource}
RECEIVER_TYPES = {"log": LogReceiver}

VALID = """\
sources:
  - name: shop
    type: csv
    path: orders.csv
kpis:
  - name: orders
    source: shop
    query: {value_column: value}
objectives:
  - name: grow
    owner: sales
    key_results:
      - name: more_orders
        kpi: orders
        measure: level
        direction: increase
        baseline: 100
        target: 150
        period: quarter
receivers:
  - name: ops
    type: log
route:
  receiver: ops
"""


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(text: str, environ: Mapping[str, str] | None = None) -> Config:
    write(Path.cwd(), text)
    return load_config(
        "config.yaml",
        environ=environ or {},
        source_types=SOURCE_TYPES,
        receiver_types=RECEIVER_TYPES,
    )


def problems_of(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(text, environ)
    return raised.value.problems


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_config_valid_file() -> None:
    config = load(VALID)

    assert config.path == Path.cwd() / "config.yaml"
    assert config.sources[0].name == "shop"
    assert config.sources[0].settings == FileSettings(path=Path("orders.csv"))
    assert config.kpis[0].query == FileQuery(value_column="value")
    key_result = config.key_results[0]
    assert key_result.objective == "grow"
    assert key_result.owner == "sales"
    assert key_result.baseline == 100.0
    assert key_result.period == "quarter"
    assert config.receivers[0].settings == LogSettings()
    assert config.route is not None
    assert config.route.receiver == "ops"


def test_load_config_defaults_for_empty_sections() -> None:
    config = load("server: {}\n")

    assert config.server.listen == "127.0.0.1:9464"
    assert config.storage.retention == timedelta(days=400)
    assert config.sources == ()
    assert config.route is None


def test_load_config_key_result_owner_overrides_objective() -> None:
    config = load(
        VALID.replace(
            "        period: quarter\n",
            "        period: quarter\n        owner: lead\n",
        )
    )

    assert config.key_results[0].owner == "lead"


def test_load_config_start_and_due_are_utc() -> None:
    text = VALID.replace(
        "        period: quarter\n",
        "        start: 2025-01-01\n        due: 2025-03-31T18:00:00+02:00\n",
    )
    key_result = load(text).key_results[0]

    assert key_result.start == datetime(2025, 1, 1, tzinfo=UTC)
    assert key_result.due == datetime(2025, 3, 31, 16, tzinfo=UTC)
    assert key_result.period is None


def test_load_config_nested_settings_and_yaml_timestamp() -> None:
    text = VALID.replace(
        "    path: orders.csv\n",
        "    path: orders.csv\n    replay: {start: 2015-01-12 00:00:00, speed: 1e6}\n",
    )
    settings = load(text).sources[0].settings

    assert isinstance(settings, FileSettings)
    assert settings.replay == ReplaySettings(
        start=datetime(2015, 1, 12, tzinfo=UTC), speed=1000000.0
    )


def test_load_config_route_tree_and_continue_alias() -> None:
    text = VALID.replace(
        "route:\n  receiver: ops\n",
        "route:\n  receiver: ops\n  routes:\n"
        "    - receiver: ops\n      continue: true\n      match_re: {team: 'a|b'}\n",
    )
    route = load(text).route

    assert route is not None
    assert route.routes[0].continue_matching is True
    assert route.routes[0].match_re == {"team": "a|b"}


def test_load_config_secrets_from_environment() -> None:
    text = """\
    server:
      api_token: ${API_TOKEN}
    sources:
      - name: erp
        type: http_json
        url: https://erp.example.com/kpis
        headers: {Authorization: "Bearer ${ERP_TOKEN}", X-Team: ops}
    """
    environ = {"API_TOKEN": "t0ken", "ERP_TOKEN": "s3cret"}
    config = load(text, environ)

    token = config.server.api_token
    assert isinstance(token, Secret)
    assert token.reveal() == "t0ken"
    assert token.variable == "API_TOKEN"
    settings = config.sources[0].settings
    assert isinstance(settings, ApiSettings)
    assert settings.headers["Authorization"].reveal() == "Bearer s3cret"
    assert settings.headers["X-Team"].reveal() == "ops"
    assert settings.url.reveal() == "https://erp.example.com/kpis"
    assert "s3cret" not in repr(config)
    assert "t0ken" not in repr(config)


def test_load_config_escaped_reference_is_literal() -> None:
    config = load("server:\n  external_url: http://host/$${PATH}\n")

    assert config.server.external_url == "http://host/${PATH}"


def test_load_config_yaml11_words_stay_strings() -> None:
    text = VALID.replace(
        "    query: {value_column: value}",
        "    help: no\n    unit: 0100\n    query: {value_column: on}",
    )
    kpi = load(text).kpis[0]

    assert kpi.help == "no"
    assert kpi.unit == "0100"
    assert kpi.query == FileQuery(value_column="on")


def test_load_config_merge_keys_and_aliases() -> None:
    text = """\
    sources:
      - &shop
        name: shop
        type: csv
        path: orders.csv
        interval: 5m
      - <<: *shop
        name: returns
        path: returns.csv
    """
    sources = load(text).sources

    assert sources[1].name == "returns"
    assert sources[1].interval == timedelta(minutes=5)
    assert sources[1].settings == FileSettings(path=Path("returns.csv"))


def test_load_config_rule_globs_resolve_against_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    (folder / "rules").mkdir(parents=True)
    write(folder / "rules", "groups: []\n", "b.yaml")
    write(folder / "rules", "groups: []\n", "a.yaml")
    path = write(folder, "rule_files: [rules/*.yaml, rules/a.yaml]\n")

    config = load_config(path, environ={}, source_types={}, receiver_types={})

    assert resolve_rule_files(config) == (
        folder / "rules" / "a.yaml",
        folder / "rules" / "b.yaml",
    )


# Each case: the YAML text and the one problem it must produce, exactly.
PROBLEM_CASES = [
    pytest.param(
        "storage:\n  retention: 5 min\n",
        "config.yaml:2: storage.retention: Invalid duration '5 min'; write a number "
        "and a unit, such as 30s, 5m, 1h30m, 7d or 2w.",
        id="invalid-duration",
    ),
    pytest.param(
        "storage:\n  retention: 0s\n",
        "config.yaml:2: storage.retention: The duration must be greater than zero; "
        "write a value such as 30s.",
        id="zero-duration",
    ),
    pytest.param(
        "storage:\n  retention: 30d\n  window: 90d\n",
        "config.yaml:2: storage.retention: The retention of 30d is shorter than "
        "storage.window (90d), so a restart would reload less history than the "
        "rules and forecasts use; raise retention to at least the window.",
        id="retention-below-window",
    ),
    pytest.param(
        "storage:\n  retentoin: 5d\n",
        "config.yaml:2: storage.retentoin: Unknown key 'retentoin'. Did you mean "
        "'retention'?",
        id="unknown-key-suggestion",
    ),
    pytest.param(
        "storage:\n  colour: blue\n",
        "config.yaml:2: storage.colour: Unknown key 'colour'. The allowed keys are "
        "path, retention, window.",
        id="unknown-key-list",
    ),
    pytest.param(
        "serverr: {}\n",
        "config.yaml:1: serverr: Unknown key 'serverr'. Did you mean 'server'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "route:\n  continue: yes\n  receiver: x\n"
        "receivers:\n  - {name: x, type: log}\n",
        "config.yaml:2: route.continue: Invalid boolean 'yes': only true and false "
        "are booleans; write true or false.",
        id="yaml11-boolean",
    ),
    pytest.param(
        "route:\n  continue: 'true'\n  receiver: x\n"
        "receivers:\n  - {name: x, type: log}\n",
        "config.yaml:2: route.continue: Expected true or false, got 'true'. Remove "
        "the quotes.",
        id="quoted-boolean",
    ),
    pytest.param(
        "sources:\n  - {name: a, type: http_json, url: u, max_attempts: 0100}\n",
        "config.yaml:2: sources[0].max_attempts: Invalid number '0100': YAML 1.1 "
        "reads a leading zero as octal. Write 100, or quote the value if it is "
        "meant as text.",
        id="leading-zero-integer",
    ),
    pytest.param(
        "sources:\n  - {name: a, type: http_json, url: u, max_attempts: 1e6}\n",
        "config.yaml:2: sources[0].max_attempts: Expected an integer, got '1e6'. "
        "Write 1000000.",
        id="float-in-integer-field",
    ),
    pytest.param(
        "sources:\n  - {name: a, type: http_json, url: u, max_attempts: true}\n",
        "config.yaml:2: sources[0].max_attempts: Expected an integer, got 'true'.",
        id="boolean-in-integer-field",
    ),
    pytest.param(
        "sources:\n  - {name: a, type: http_json, url: u, max_attempts: '5'}\n",
        "config.yaml:2: sources[0].max_attempts: Expected an integer, got '5'. "
        "Remove the quotes.",
        id="quoted-integer",
    ),
    pytest.param(
        "sources:\n  - name: a\n    type: csv\n    path: p\n    replay:\n"
        "      start: 2015-01-01\n      speed: 1:30\n",
        "config.yaml:7: sources[0].replay.speed: Expected a number, got '1:30'. "
        "Sexagesimal numbers such as 1:30 are not read; write 90.",
        id="sexagesimal-number",
    ),
    pytest.param(
        "sources:\n  - name: a\n    type: csv\n    path: p\n    replay:\n"
        "      start: 2015-01-01\n      speed: .nan\n",
        "config.yaml:7: sources[0].replay.speed: Invalid number '.nan'; write a "
        "finite number.",
        id="nan-number",
    ),
    pytest.param(
        "sources:\n  - name: a\n    type: csv\n    path: p\n    replay:\n"
        "      start: soon\n",
        "config.yaml:6: sources[0].replay.start: Invalid timestamp 'soon'; write an "
        "ISO 8601 timestamp such as 2025-01-06 or 2025-01-06T09:00:00Z.",
        id="invalid-timestamp",
    ),
    pytest.param(
        "server:\n  listen: [a, b]\n",
        "config.yaml:2: server.listen: Expected a string, got a list.",
        id="list-for-string",
    ),
    pytest.param(
        "server:\n  listen:\n",
        "config.yaml:2: server.listen: Expected a string, got an empty value.",
        id="empty-string-field",
    ),
    pytest.param(
        "server:\n  listen: localhost\n",
        "config.yaml:2: server.listen: Invalid listen address 'localhost'; write "
        "host:port, such as 127.0.0.1:9464 or [::1]:9464.",
        id="listen-without-port",
    ),
    pytest.param(
        "server:\n  external_url: localhost:9464\n",
        "config.yaml:2: server.external_url: Invalid URL 'localhost:9464'; write an "
        "http:// or https:// URL.",
        id="external-url-scheme",
    ),
    pytest.param(
        "rule_files: rules/*.yaml\n",
        "config.yaml:1: rule_files: Expected a list, got 'rules/*.yaml'. Write it as "
        "[a, b] or as lines starting '- '.",
        id="scalar-for-list",
    ),
    pytest.param(
        "rule_files: [missing.yaml]\n",
        "config.yaml:1: rule_files[0]: Rule file 'missing.yaml' not found in "
        "'{folder}'; paths are relative to the folder of this file.",
        id="rule-file-missing",
    ),
    pytest.param(
        "rule_files:\n  - rules/*.yaml\n",
        "config.yaml:2: rule_files[0]: The glob 'rules/*.yaml' matches no file in "
        "'{folder}'; paths are relative to the folder of this file.",
        id="rule-glob-no-match",
    ),
    pytest.param(
        "storage:\n  retention: 100d\n  retention: 200d\n",
        "config.yaml:3: storage.retention: Duplicate key 'retention' at lines 2 and "
        "3; remove one of them.",
        id="duplicate-key",
    ),
    pytest.param(
        "route:\n  receiver: x\n  match: {team: a, team: b}\n"
        "receivers: [{name: x, type: log}]\n",
        "config.yaml:3: route.match.team: Duplicate key 'team' twice on line 3; "
        "remove one of them.",
        id="duplicate-key-flow-mapping",
    ),
    pytest.param(
        "server:\n  listen: !!python/object:os.system x\n",
        "config.yaml:2: server.listen: The tag 'tag:yaml.org,2002:python/object:"
        "os.system' is not supported; remove it, and quote the value if it is "
        "meant as a string.",
        id="python-tag",
    ),
    pytest.param(
        "server:\n  api_token: ${KRWATCH_TOKEN}\n",
        "config.yaml:2: server.api_token: The environment variable 'KRWATCH_TOKEN' "
        "is not set; set it, or write the value into the file.",
        id="secret-variable-unset",
    ),
    pytest.param(
        "server:\n  listen: ${LISTEN}\n",
        "config.yaml:2: server.listen: This field does not accept environment "
        "references such as ${NAME}; write the value itself, or write $${NAME} for "
        "the literal text.",
        id="reference-in-plain-field",
    ),
    pytest.param(
        "sources:\n  - {name: a, type: cvs}\n",
        "config.yaml:2: sources[0].type: Unknown source type 'cvs'. Did you mean "
        "'csv'? The known types are csv, http_json.",
        id="unknown-source-type",
    ),
    pytest.param(
        "receivers:\n  - {name: a, type: slack}\n",
        "config.yaml:2: receivers[0].type: Unknown receiver type 'slack'. The known "
        "types are log.",
        id="unknown-receiver-type",
    ),
    pytest.param(
        "sources:\n  - name: a\n    type: csv\n",
        "config.yaml:2: sources[0].path: Missing required key 'path'.",
        id="missing-settings-key",
    ),
    pytest.param(
        "sources:\n  - name: a\n    type: csv\n    path: p\n    intervall: 1m\n",
        "config.yaml:5: sources[0].intervall: Unknown key 'intervall'. Did you mean "
        "'interval'?",
        id="common-key-typo",
    ),
    pytest.param(
        "sources:\n  - type: csv\n    path: p\n",
        "config.yaml:2: sources[0].name: Missing required key 'name'.",
        id="missing-common-key",
    ),
    pytest.param(
        "receivers:\n  - {name: a, type: log, path: x, colour: red}\n",
        "config.yaml:2: receivers[0].colour: Unknown key 'colour'. The allowed keys "
        "are name, path, type.",
        id="unknown-receiver-key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEM_CASES)
def test_load_config_reports_problem(text: str, expected: str) -> None:
    expected = expected.replace("{folder}", str(Path.cwd()))

    assert problems_of(text) == [expected]


# Each case: a replacement in VALID and the one problem it must produce.
CROSS_CASES = [
    pytest.param(
        ("    source: shop\n", "    source: shpo\n"),
        "config.yaml:7: kpis[0].source: Unknown source 'shpo'. Did you mean 'shop'? "
        "The sources are shop.",
        id="kpi-source-unknown",
    ),
    pytest.param(
        ("        kpi: orders\n", "        kpi: revenue\n"),
        "config.yaml:14: objectives[0].key_results[0].kpi: Unknown KPI 'revenue'. "
        "The KPIs are orders.",
        id="key-result-kpi-unknown",
    ),
    pytest.param(
        ("  receiver: ops\n", "  receiver: opz\n"),
        "config.yaml:24: route.receiver: Unknown receiver 'opz'. Did you mean 'ops'? "
        "The receivers are ops.",
        id="route-receiver-unknown",
    ),
    pytest.param(
        ("        target: 150\n", "        target: 50\n"),
        "config.yaml:18: objectives[0].key_results[0].target: The target 50 is below "
        "the baseline 100, but the direction is increase; raise the target or write "
        "direction: decrease.",
        id="target-against-increase",
    ),
    pytest.param(
        ("        direction: increase\n", "        direction: decrease\n"),
        "config.yaml:18: objectives[0].key_results[0].target: The target 150 is "
        "above the baseline 100, but the direction is decrease; lower the target or "
        "write direction: increase.",
        id="target-against-decrease",
    ),
    pytest.param(
        ("        target: 150\n", "        target: 100\n"),
        "config.yaml:18: objectives[0].key_results[0].target: The target 100 equals "
        "the baseline; progress needs a target that differs from the baseline.",
        id="target-equals-baseline",
    ),
    pytest.param(
        (
            "        period: quarter\n",
            "        period: quarter\n        start: 2025-01-01\n",
        ),
        "config.yaml:20: objectives[0].key_results[0].start: Set either period, or "
        "start and due, not both; remove one of them.",
        id="period-and-start",
    ),
    pytest.param(
        ("        period: quarter\n", "        start: 2025-01-01\n"),
        "config.yaml:13: objectives[0].key_results[0].due: Missing due; set period "
        "(week, month or quarter), or both start and due.",
        id="start-without-due",
    ),
    pytest.param(
        (
            "        period: quarter\n",
            "        start: 2025-04-01\n        due: 2025-01-01\n",
        ),
        "config.yaml:20: objectives[0].key_results[0].due: The due date "
        "2025-01-01T00:00:00+00:00 is not after the start 2025-04-01T00:00:00+00:00; "
        "set a due date after the start.",
        id="due-before-start",
    ),
    pytest.param(
        ("        period: quarter\n", "        period: year\n"),
        "config.yaml:19: objectives[0].key_results[0].period: Invalid value 'year'. "
        "The allowed values are week, month, quarter.",
        id="period-choice",
    ),
    pytest.param(
        ("        measure: level\n", "        measure: cumulativ\n"),
        "config.yaml:15: objectives[0].key_results[0].measure: Invalid value "
        "'cumulativ'. Did you mean 'cumulative'? The allowed values are level, "
        "cumulative.",
        id="measure-suggestion",
    ),
    pytest.param(
        ("    owner: sales\n", ""),
        "config.yaml:12: objectives[0].key_results[0].owner: Missing owner; set "
        "owner on the key result or on its objective.",
        id="owner-missing",
    ),
    pytest.param(
        ("        baseline: 100\n", "        baseline: 1_000\n"),
        "config.yaml:17: objectives[0].key_results[0].baseline: Expected a number, "
        "got '1_000'.",
        id="underscore-number",
    ),
    pytest.param(
        ("  - name: ops\n", "  - name: ops\n    colour: red\n"),
        "config.yaml:22: receivers[0].colour: Unknown key 'colour'. The allowed keys "
        "are name, path, type.",
        id="receiver-unknown-key",
    ),
    pytest.param(
        ("    query: {value_column: value}\n", "    query: {value_colum: value}\n"),
        "config.yaml:8: kpis[0].query.value_colum: Unknown key 'value_colum'. Did "
        "you mean 'value_column'?",
        id="query-unknown-key",
    ),
    pytest.param(
        ("    query: {value_column: value}\n", "    query: {label_columns: a}\n"),
        "config.yaml:8: kpis[0].query.label_columns: Expected a list, got 'a'. Write "
        "it as [a, b] or as lines starting '- '.",
        id="query-wrong-type",
    ),
    pytest.param(
        ("    source: shop\n", "    source: shop\n    stale_after: 0s\n"),
        "config.yaml:8: kpis[0].stale_after: The duration must be greater than "
        "zero; write a value such as 30s.",
        id="stale-after-zero",
    ),
    pytest.param(
        ("  receiver: ops\n", "  receiver: ops\n  match_re: {team: '('}\n"),
        "config.yaml:25: route.match_re.team: Invalid regular expression '(': "
        "missing ), unterminated subpattern at position 0; fix the pattern.",
        id="route-regex",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CROSS_CASES)
def test_load_config_reports_cross_problem(
    change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in VALID

    assert problems_of(VALID.replace(old, new, 1)) == [expected]


@pytest.mark.parametrize(
    ("section", "item", "role"),
    [
        pytest.param("sources", "{name: a, type: csv, path: p}", "source", id="source"),
        pytest.param("kpis", "{name: a, source: s}", "KPI", id="kpi"),
        pytest.param("receivers", "{name: a, type: log}", "receiver", id="receiver"),
    ],
)
def test_load_config_duplicate_names(section: str, item: str, role: str) -> None:
    source = "sources:\n  - {name: s, type: csv, path: p}\n"
    text = f"{source}{section}:\n  - {item}\n  - {item}\n"
    if section == "sources":
        text = f"sources:\n  - {item}\n  - {item}\n"

    problems = problems_of(text)

    line = 3 if section == "sources" else 5
    first = line - 1
    assert problems == [
        f"config.yaml:{line}: {section}[1].name: Duplicate {role} name 'a'; it is "
        f"also used at line {first}. Give each {role} a unique name."
    ]


def test_load_config_duplicate_key_result_across_objectives() -> None:
    second_objective = """\
  - name: grow_more
    owner: sales
    key_results:
      - name: more_orders
        kpi: orders
        measure: level
        direction: increase
        baseline: 100
        target: 200
        period: quarter
"""
    text = VALID.replace("receivers:\n", second_objective + "receivers:\n")

    problems = problems_of(text)

    assert problems == [
        "config.yaml:23: objectives[1].key_results[0].name: Duplicate key result "
        "name 'more_orders'; it is also used at line 13. Give each key result a "
        "unique name."
    ]


def test_load_config_lists_every_problem_sorted() -> None:
    text = """\
    storage:
      retention: 5 min
    evaluation:
      interval: 1m
      colour: blue
    route:
      receiver: nobody
      continue: no
    """

    problems = problems_of(text)

    assert [problem.split(":")[1] for problem in problems] == ["2", "5", "7", "8"]
    assert problems[0].startswith("config.yaml:2: storage.retention: Invalid duration")
    assert problems[1].startswith("config.yaml:5: evaluation.colour: Unknown key")
    assert problems[2].startswith("config.yaml:7: route.receiver: Unknown receiver")
    assert problems[3].startswith("config.yaml:8: route.continue: Invalid boolean")


def test_load_config_route_checked_when_other_parts_invalid() -> None:
    text = "storage:\n  retention: 5 min\nroute:\n  receiver: nobody\n"

    problems = problems_of(text)

    assert len(problems) == 2
    assert problems[1] == (
        "config.yaml:4: route.receiver: Unknown receiver 'nobody'. No receiver is "
        "defined."
    )


def test_load_config_invalid_source_still_known() -> None:
    text = VALID.replace(
        "    path: orders.csv\n", "    path: orders.csv\n    timezone: [x]\n"
    )

    problems = problems_of(text)

    assert problems == [
        "config.yaml:5: sources[0].timezone: Expected a string, got a list."
    ]


def test_load_config_secret_never_in_problems() -> None:
    text = "server:\n  api_token: ${TOKEN}\n  listen: [x]\n"

    problems = problems_of(text, environ={"TOKEN": "hunter2"})

    assert len(problems) == 1
    assert "hunter2" not in problems[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            None, "config.yaml:1: File not found; check the path.", id="missing"
        ),
        pytest.param(
            "",
            "config.yaml:1: The file is empty; write the configuration as a YAML "
            "mapping.",
            id="empty",
        ),
        pytest.param(
            "a: 1\n---\nb: 2\n",
            "config.yaml:2:1: Invalid YAML: expected a single document in the "
            "stream, but found another document.",
            id="two-documents",
        ),
        pytest.param(
            "- a\n- b\n",
            "config.yaml:1: Expected a mapping, got a list. Write the keys server, "
            "storage, evaluation, sources, kpis, objectives, receivers, route, "
            "rule_files.",
            id="not-a-mapping",
        ),
    ],
)
def test_load_config_file_problems(content: str | None, expected: str) -> None:
    if content is not None:
        Path("config.yaml").write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_config("config.yaml", environ={}, source_types={}, receiver_types={})

    assert raised.value.problems == [expected]


# The wording after "Invalid YAML:" comes from PyYAML, and differs between
# its libyaml and pure Python parsers, so only the start and end are fixed.
@pytest.mark.parametrize(
    ("content", "start", "end"),
    [
        pytest.param(
            "server:\n  listen: [\n",
            "config.yaml:3:1: Invalid YAML: while parsing a flow node, ",
            ".",
            id="unclosed-flow",
        ),
        pytest.param(
            "server:\n\tlisten: x\n",
            "config.yaml:2:1: Invalid YAML: while scanning for the next token, ",
            ". Indent with spaces, not tabs.",
            id="tab",
        ),
        pytest.param(
            "a: b: c\n",
            "config.yaml:1:5: Invalid YAML: mapping values are not allowed ",
            ".",
            id="nested-colon",
        ),
    ],
)
def test_load_config_yaml_syntax_error(content: str, start: str, end: str) -> None:
    Path("config.yaml").write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_config("config.yaml", environ={}, source_types={}, receiver_types={})

    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith(start)
    assert raised.value.problems[0].endswith(end)


def test_load_config_invalid_utf8() -> None:
    Path("config.yaml").write_bytes(b"server:\n  listen: \xff\n")

    with pytest.raises(
        ConfigError, match=r"config.yaml:2: The file is not valid UTF-8"
    ):
        load_config("config.yaml", environ={}, source_types={}, receiver_types={})


def test_load_config_folder_instead_of_file() -> None:
    Path("config.yaml").mkdir()

    with pytest.raises(ConfigError, match=r"config.yaml:1: The path is a folder"):
        load_config("config.yaml", environ={}, source_types={}, receiver_types={})


def test_check_files_lists_config_and_rule_problems() -> None:
    Path("rules").mkdir()
    write(
        Path("rules"), "groups:\n  - name: g\n    rules:\n      - alert: A\n", "a.yaml"
    )
    text = (
        VALID.replace("    source: shop\n", "    source: shpo\n")
        + "rule_files: [rules/*.yaml]\n"
    )
    write(Path.cwd(), text)

    problems = check_files(
        "config.yaml",
        environ={},
        source_types=SOURCE_TYPES,
        receiver_types=RECEIVER_TYPES,
    )

    assert len(problems) == 2
    assert problems[0].startswith("config.yaml:7: kpis[0].source: Unknown source")
    assert problems[1].startswith(
        "rules/a.yaml:4: groups[0].rules[0]: The rule matches no kind"
    )


def test_check_files_valid_returns_empty_list() -> None:
    Path("rules").mkdir()
    write(
        Path("rules"),
        "groups:\n  - name: g\n    rules:\n"
        "      - {alert: A, key_results: [more_orders], attainment_below: 0.5}\n",
        "a.yaml",
    )
    write(Path.cwd(), VALID + "rule_files: [rules/*.yaml]\n")

    problems = check_files(
        "config.yaml",
        environ={},
        source_types=SOURCE_TYPES,
        receiver_types=RECEIVER_TYPES,
    )

    assert problems == []


EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def test_load_config_example_with_real_registries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = pytest.importorskip("monitor.sources")
    receivers = pytest.importorskip("exporters.receivers")
    if not hasattr(sources, "SOURCE_TYPES") or not hasattr(receivers, "RECEIVER_TYPES"):
        pytest.skip("the source or receiver registry is not written yet")
    monkeypatch.chdir(EXAMPLE.parent)

    problems = check_files(EXAMPLE.name, environ={})

    assert problems == []


def test_load_config_unknown_name_among_many() -> None:
    sources = "".join(
        f"  - {{name: shop{index:02d}, type: csv, path: p}}\n" for index in range(13)
    )
    text = f"sources:\n{sources}kpis:\n  - {{name: k, source: shop99}}\n"

    problems = problems_of(text)

    assert problems == [
        "config.yaml:16: kpis[0].source: Unknown source 'shop99'. Did you mean "
        "'shop09'? 13 sources are defined, none with this name."
    ]


@dataclass(frozen=True, kw_only=True)
class CheckedSettings:
    step: int = 1

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError(f"step is {self.step}; set a positive number.")


class CheckedSource:
    settings_class = CheckedSettings
    query_class = None


def test_load_config_settings_post_init_error() -> None:
    write(Path.cwd(), "sources:\n  - name: a\n    type: checked\n    step: 0\n")

    with pytest.raises(ConfigError) as raised:
        load_config(
            "config.yaml",
            environ={},
            source_types={"checked": CheckedSource},
            receiver_types={},
        )

    assert raised.value.problems == [
        "config.yaml:2: sources[0]: step is 0; set a positive number."
    ]


def test_load_config_query_for_type_without_queries() -> None:
    text = (
        "sources:\n  - {name: a, type: checked}\n"
        "kpis:\n  - name: k\n    source: a\n    query: {x: 1}\n"
    )
    write(Path.cwd(), text)

    with pytest.raises(ConfigError) as raised:
        load_config(
            "config.yaml",
            environ={},
            source_types={"checked": CheckedSource},
            receiver_types={},
        )

    assert raised.value.problems == [
        "config.yaml:6: kpis[0].query: This KPI's source type takes no query; "
        "remove the key."
    ]


def test_load_config_type_without_settings_rejects_keys() -> None:
    class Bare:
        settings_class = None

    write(Path.cwd(), "receivers:\n  - {name: a, type: bare, nmae: x}\n")

    with pytest.raises(ConfigError) as raised:
        load_config(
            "config.yaml", environ={}, source_types={}, receiver_types={"bare": Bare}
        )

    assert raised.value.problems == [
        "config.yaml:2: receivers[0].nmae: Unknown key 'nmae'. Did you mean 'name'?"
    ]


def test_load_config_settings_none_without_keys() -> None:
    class Bare:
        settings_class = None

    write(Path.cwd(), "receivers:\n  - {name: a, type: bare}\n")

    config = load_config(
        "config.yaml", environ={}, source_types={}, receiver_types={"bare": Bare}
    )

    assert config.receivers[0].settings is None
