"""Tests of the YAML layer and of the type-driven mapping onto dataclasses."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from monitor.config import _yaml
from monitor.config._schema import INVALID, Reader
from monitor.config._yaml import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    Scalar,
    parse_document,
)
from monitor.config._yaml import (
    Mapping as MappingNode,
)
from monitor.secrets import Secret


@dataclass(frozen=True, kw_only=True)
class Inner:
    size: int


@dataclass(frozen=True, kw_only=True)
class Everything:
    text: str = ""
    count: int = 0
    ratio: float = 0.0
    enabled: bool = False
    every: timedelta = timedelta(0)
    at: datetime | None = None
    file: Path | None = None
    mode: Literal["fast", "slow"] = "fast"
    tags: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    inner: Inner | None = None
    token: Secret | None = None
    headers: Mapping[str, Secret] = field(default_factory=dict)
    body: Any = None
    either: int | str = 0
    for_: timedelta = timedelta(0)


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with both of PyYAML's parsers."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        base: type = yaml.CSafeLoader
    else:
        base = yaml.SafeLoader
    monkeypatch.setattr(_yaml, "_ComposeLoader", _yaml.make_compose_loader(base))
    return str(request.param)


def read(text: str, environ: Mapping[str, str] | None = None) -> tuple[Any, list[str]]:
    document = parse_document(text, "test.yaml")
    reader = Reader(document, environ or {})
    if document.root is None:
        return INVALID, [str(problem) for problem in document.problems]
    value = reader.read(Everything, document.root, ())
    return value, [str(problem) for problem in document.problems]


def read_field(text: str, environ: Mapping[str, str] | None = None) -> Any:
    value, problems = read(text, environ)
    assert problems == []
    return value


VALUE_CASES = [
    pytest.param("text: yes", "text", "yes", id="yes-in-string"),
    pytest.param("text: no", "text", "no", id="no-in-string"),
    pytest.param("text: on", "text", "on", id="on-in-string"),
    pytest.param("text: 0100", "text", "0100", id="leading-zero-in-string"),
    pytest.param("text: 1.10", "text", "1.10", id="version-in-string"),
    pytest.param("text: 1:30", "text", "1:30", id="sexagesimal-in-string"),
    pytest.param("text: 2025-01-01", "text", "2025-01-01", id="date-in-string"),
    pytest.param("text: ''", "text", "", id="quoted-empty-string"),
    pytest.param("text: !!str 12", "text", "12", id="explicit-str-tag"),
    pytest.param("count: 12", "count", 12, id="integer"),
    pytest.param("count: -7", "count", -7, id="negative-integer"),
    pytest.param("count: 0", "count", 0, id="zero"),
    pytest.param("count: 0x1f", "count", 31, id="hex-integer"),
    pytest.param("count: 0o17", "count", 15, id="octal-integer"),
    pytest.param("ratio: 1e6", "ratio", 1000000.0, id="exponent-float"),
    pytest.param("ratio: 2", "ratio", 2.0, id="integer-as-float"),
    pytest.param("ratio: .5", "ratio", 0.5, id="leading-dot-float"),
    pytest.param("ratio: -1.5E-3", "ratio", -0.0015, id="negative-exponent"),
    pytest.param("enabled: true", "enabled", True, id="true"),
    pytest.param("enabled: False", "enabled", False, id="capital-false"),
    pytest.param("every: 1h30m", "every", timedelta(minutes=90), id="duration"),
    pytest.param("every: 0", "every", timedelta(0), id="zero-duration"),
    pytest.param("for: 5m", "for_", timedelta(minutes=5), id="for-alias"),
    pytest.param(
        "at: 2025-01-06T09:00:00",
        "at",
        datetime(2025, 1, 6, 9, tzinfo=UTC),
        id="naive-timestamp-is-utc",
    ),
    pytest.param(
        "at: '2025-01-06T09:00:00+01:00'",
        "at",
        datetime(2025, 1, 6, 8, tzinfo=UTC),
        id="offset-timestamp",
    ),
    pytest.param(
        "at: 2025-01-06T09:00:00Z",
        "at",
        datetime(2025, 1, 6, 9, tzinfo=UTC),
        id="zulu-timestamp",
    ),
    pytest.param(
        "at: 2001-12-14 21:59:43.10 -5",
        "at",
        datetime(2001, 12, 15, 2, 59, 43, 100000, tzinfo=UTC),
        id="yaml-timestamp",
    ),
    pytest.param(
        "at: 2025-01-06", "at", datetime(2025, 1, 6, tzinfo=UTC), id="date-only"
    ),
    pytest.param("at: null", "at", None, id="null-optional"),
    pytest.param("at: ~", "at", None, id="tilde-optional"),
    pytest.param("at:", "at", None, id="empty-optional"),
    pytest.param("file: data/x.db", "file", Path("data/x.db"), id="path"),
    pytest.param("mode: slow", "mode", "slow", id="literal"),
    pytest.param(
        "tags: {on: yes, '1': 0100}", "tags", {"on": "yes", "1": "0100"}, id="tags"
    ),
    pytest.param("names: [a, 'b', 0100]", "names", ("a", "b", "0100"), id="names"),
    pytest.param("names: []", "names", (), id="empty-list"),
    pytest.param("inner: {size: 3}", "inner", Inner(size=3), id="nested"),
    pytest.param(
        "body: {a: [1, 2.5, true, null, x, '3']}",
        "body",
        {"a": [1, 2.5, True, None, "x", "3"]},
        id="plain-data",
    ),
    pytest.param("either: 5", "either", 5, id="union-first"),
    pytest.param("either: five", "either", "five", id="union-second"),
]


@pytest.mark.parametrize(("text", "name", "expected"), VALUE_CASES)
def test_reader_reads_value(text: str, name: str, expected: object) -> None:
    value = read_field(text)

    assert getattr(value, name) == expected
    assert type(getattr(value, name)) is type(expected)


PROBLEM_CASES = [
    pytest.param(
        "enabled: yes",
        "test.yaml:1: enabled: Invalid boolean 'yes': only true and false are "
        "booleans; write true or false.",
        id="yes-in-bool",
    ),
    pytest.param(
        "enabled: OFF",
        "test.yaml:1: enabled: Invalid boolean 'OFF': only true and false are "
        "booleans; write true or false.",
        id="off-in-bool",
    ),
    pytest.param(
        "enabled: n",
        "test.yaml:1: enabled: Invalid boolean 'n': only true and false are "
        "booleans; write true or false.",
        id="n-in-bool",
    ),
    pytest.param(
        "enabled: 1",
        "test.yaml:1: enabled: Expected true or false, got '1'. Write true or false.",
        id="number-in-bool",
    ),
    pytest.param(
        "count: 0100",
        "test.yaml:1: count: Invalid number '0100': YAML 1.1 reads a leading zero "
        "as octal. Write 100, or quote the value if it is meant as text.",
        id="leading-zero",
    ),
    pytest.param(
        "ratio: -007",
        "test.yaml:1: ratio: Invalid number '-007': YAML 1.1 reads a leading zero "
        "as octal. Write -7, or quote the value if it is meant as text.",
        id="negative-leading-zero",
    ),
    pytest.param(
        "count: 2.5",
        "test.yaml:1: count: Expected an integer, got '2.5'.",
        id="fraction-in-integer",
    ),
    pytest.param(
        "count: true",
        "test.yaml:1: count: Expected an integer, got 'true'.",
        id="bool-in-integer",
    ),
    pytest.param(
        "ratio: false",
        "test.yaml:1: ratio: Expected a number, got 'false'.",
        id="bool-in-float",
    ),
    pytest.param(
        "ratio: 1:30",
        "test.yaml:1: ratio: Expected a number, got '1:30'. Sexagesimal numbers "
        "such as 1:30 are not read; write 90.",
        id="sexagesimal",
    ),
    pytest.param(
        "ratio: -.inf",
        "test.yaml:1: ratio: Invalid number '-.inf'; write a finite number.",
        id="infinity",
    ),
    pytest.param(
        "ratio: 1e999",
        "test.yaml:1: ratio: Expected a number, got '1e999'.",
        id="overflow",
    ),
    pytest.param(
        "mode: fats",
        "test.yaml:1: mode: Invalid value 'fats'. Did you mean 'fast'? The allowed "
        "values are fast, slow.",
        id="literal-suggestion",
    ),
    pytest.param(
        "mode: medium",
        "test.yaml:1: mode: Invalid value 'medium'. The allowed values are fast, slow.",
        id="literal-no-suggestion",
    ),
    pytest.param(
        "text: {a: 1}",
        "test.yaml:1: text: Expected a string, got a mapping.",
        id="mapping-for-string",
    ),
    pytest.param(
        "text:",
        "test.yaml:1: text: Expected a string, got an empty value.",
        id="null-for-string",
    ),
    pytest.param(
        "inner: {size: 1, colour: red}",
        "test.yaml:1: inner.colour: Unknown key 'colour'. The allowed keys are size.",
        id="nested-unknown-key",
    ),
    pytest.param(
        "inner: {}",
        "test.yaml:1: inner.size: Missing required key 'size'.",
        id="nested-missing-key",
    ),
    pytest.param(
        "inner: 3",
        "test.yaml:1: inner: Expected a mapping, got '3'. Write the keys size.",
        id="scalar-for-dataclass",
    ),
    pytest.param(
        "names: [a, [b]]",
        "test.yaml:1: names[1]: Expected a string, got a list.",
        id="nested-list-item",
    ),
    pytest.param(
        "for_: 5m",
        "test.yaml:1: for_: Unknown key 'for_'. Did you mean 'for'?",
        id="field-name-instead-of-alias",
    ),
    pytest.param(
        "every: 90",
        "test.yaml:1: every: Invalid duration '90'; write a number and a unit, "
        "such as 30s, 5m, 1h30m, 7d or 2w.",
        id="duration-without-unit",
    ),
    pytest.param(
        "every: 30m1h",
        "test.yaml:1: every: Invalid duration '30m1h'; give each unit once, from "
        "the largest to the smallest, such as 1h30m.",
        id="duration-out-of-order",
    ),
    pytest.param(
        "at: 2025-13-01",
        "test.yaml:1: at: Invalid timestamp '2025-13-01'; write an ISO 8601 "
        "timestamp such as 2025-01-06 or 2025-01-06T09:00:00Z.",
        id="invalid-month",
    ),
    pytest.param(
        "token: ${MISSING}",
        "test.yaml:1: token: The environment variable 'MISSING' is not set; set "
        "it, or write the value into the file.",
        id="unset-variable",
    ),
    pytest.param(
        "tags: {a: 'x ${HOME} y'}",
        "test.yaml:1: tags.a: This field does not accept environment references "
        "such as ${NAME}; write the value itself, or write $${NAME} for the "
        "literal text.",
        id="reference-in-mapping",
    ),
    pytest.param(
        "either: [1]",
        "test.yaml:1: either: Expected an integer or a string, got a list.",
        id="union-mismatch",
    ),
    pytest.param(
        "body: {n: 010}",
        "test.yaml:1: body.n: Invalid number '010': YAML 1.1 reads a leading zero "
        "as octal. Write 10, or quote the value if it is meant as text.",
        id="leading-zero-in-plain-data",
    ),
    pytest.param(
        "text: !!binary aGVsbG8=",
        "test.yaml:1: text: The tag 'tag:yaml.org,2002:binary' is not supported; "
        "remove it, and quote the value if it is meant as a string.",
        id="binary-tag",
    ),
    pytest.param(
        "names: !!set {a, b}",
        "test.yaml:1: names: The tag 'tag:yaml.org,2002:set' is not supported; "
        "remove it, and quote the value if it is meant as a string.",
        id="set-tag",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEM_CASES)
def test_reader_reports_problem(text: str, expected: str) -> None:
    value, problems = read(text)

    assert problems == [expected]
    assert value is INVALID


def test_yaml_collection_key_rejected() -> None:
    document = parse_document("? [a, b]\n: 1\nc: 2\n", "f")

    assert [str(problem) for problem in document.problems] == [
        "f:1: A key must be a plain string, not a collection."
    ]
    assert isinstance(document.root, MappingNode)
    assert document.root.keys() == ["c"]


def test_reader_secret_substitution() -> None:
    environ = {"USER_NAME": "ann", "PASSWORD": "p4ss"}
    text = "headers: {Authorization: 'Basic ${USER_NAME}:${PASSWORD}', Plain: x}"

    value = read_field(text, environ)

    secret = value.headers["Authorization"]
    assert secret.reveal() == "Basic ann:p4ss"
    assert secret.variable == "USER_NAME,PASSWORD"
    assert repr(secret) == "Secret('********')"
    assert value.headers["Plain"].reveal() == "x"
    assert value.headers["Plain"].variable == ""


def test_reader_secret_escaped_reference() -> None:
    value = read_field("token: pa$${NOT_A_VARIABLE}ss", {})

    assert value.token.reveal() == "pa${NOT_A_VARIABLE}ss"


def test_reader_unset_variable_names_only_the_variable() -> None:
    _, problems = read("token: ${SET}${UNSET}", {"SET": "visible-secret"})

    assert len(problems) == 1
    assert "'UNSET'" in problems[0]
    assert "visible-secret" not in problems[0]


def test_reader_reports_every_problem_in_order() -> None:
    text = "count: x\nratio: y\nenabled: on\nmode: z\n"

    _, problems = read(text)

    assert [problem.split(":")[1] for problem in problems] == ["1", "2", "3", "4"]


def test_yaml_duplicate_keys_in_nested_list() -> None:
    document = parse_document("a:\n  - {x: 1}\n  - x: 1\n    y: 2\n    x: 3\n", "f")

    assert [str(problem) for problem in document.problems] == [
        "f:5: a[1].x: Duplicate key 'x' at lines 3 and 5; remove one of them."
    ]


def test_yaml_merge_key_precedence() -> None:
    text = (
        "base: &base {a: 1, b: 1}\n"
        "other: &other {b: 2, c: 2}\n"
        "item:\n  <<: [*base, *other]\n  c: 3\n"
    )

    document = parse_document(text, "f")

    assert document.problems == []
    root = document.root
    assert isinstance(root, MappingNode)
    item = root.get("item")
    assert isinstance(item, MappingNode)
    values = {}
    for key, value in item.entries:
        assert isinstance(value, Scalar)
        values[key.value] = value.value
    assert values == {"a": "1", "b": "1", "c": "3"}


def test_yaml_merge_key_needs_mapping() -> None:
    document = parse_document("item:\n  <<: [1]\n  a: 2\n", "f")

    assert [str(problem) for problem in document.problems] == [
        "f:2: item: A merge key '<<' takes a mapping or a list of mappings, such "
        "as <<: *defaults."
    ]


def test_yaml_alias_bomb_rejected_quickly() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        items = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{items}]")
    text = "\n".join(levels) + "\n"

    started = time.monotonic()
    document = parse_document(text, "bomb.yaml")
    elapsed_seconds = time.monotonic() - started

    assert document.root is None
    assert len(document.problems) == 1
    assert f"beyond {MAX_ALIAS_NODES} nodes" in str(document.problems[0])
    assert elapsed_seconds < 5


def test_yaml_moderate_aliases_allowed() -> None:
    text = "defaults: &d {a: 1, b: 2}\nitems:\n" + "  - *d\n" * 100

    document = parse_document(text, "f")

    assert document.problems == []
    assert document.root is not None


def test_yaml_recursive_alias_rejected() -> None:
    document = parse_document("a: &x [1, *x]\n", "f")

    assert document.root is None
    assert [str(problem) for problem in document.problems] == [
        "f:1: a[1]: The alias refers to a node that contains it; remove it."
    ]


def test_yaml_deep_nesting_rejected() -> None:
    depth = MAX_DEPTH + 5
    text = "[" * depth + "]" * depth + "\n"

    document = parse_document(text, "f")

    assert document.root is None
    assert len(document.problems) == 1
    assert f"more than {MAX_DEPTH} levels" in str(document.problems[0])


def test_yaml_very_deep_nesting_does_not_crash() -> None:
    # Past both Python's default recursion limit and libyaml's depth limit;
    # the pure Python scanner is quadratic in the depth, so not much more.
    depth = 1100
    text = "[" * depth + "]" * depth + "\n"

    document = parse_document(text, "f")

    # libyaml stops at its own depth limit first; the pure Python parser
    # recurses until this module's limit or RecursionError stops it.
    assert document.root is None
    assert len(document.problems) == 1
    assert "nest" in str(document.problems[0]).lower()


def test_yaml_scalar_positions_and_styles() -> None:
    document = parse_document("a: plain\nb: 'single'\nc: |\n  block\n", "f")

    root = document.root
    assert isinstance(root, MappingNode)
    plain, single, block = (value for _, value in root.entries)
    assert isinstance(plain, Scalar)
    assert (plain.line, plain.column, plain.plain) == (1, 4, True)
    assert isinstance(single, Scalar)
    assert (single.line, single.style, single.plain) == (2, "'", False)
    assert isinstance(block, Scalar)
    assert (block.line, block.style, block.value) == (3, "|", "block\n")


def test_yaml_timestamp_with_offset_in_reader() -> None:
    value = read_field("at: 2025-06-01T12:00:00-04:00")

    assert value.at == datetime(2025, 6, 1, 16, tzinfo=UTC)
    assert value.at.utcoffset() == timedelta(0)


def test_yaml_control_character_rejected() -> None:
    document = parse_document("a: 1\nb: x\x00y\n", "f")

    assert document.root is None
    assert [str(problem) for problem in document.problems] == [
        "f:2: Invalid YAML: the character U+0000 is not allowed; remove it."
    ]
