"""Tests of annotation templates: filters, the sandbox and the static check."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from rules.loader import load_rule_file
from rules.templates import (
    check_annotations,
    check_template,
    render_annotations,
)


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{{ value | percent }}", 0.0512, "5.1%"),
        ("{{ value | percent(2) }}", 0.0512, "5.12%"),
        ("{{ value | signed_percent }}", -0.031, "-3.1%"),
        ("{{ value | signed_percent(0) }}", 0.25, "+25%"),
        ("{{ value | humanize }}", 1234567, "1.23M"),
        ("{{ value | humanize }}", 12.5, "12.5"),
        ("{{ value | number }}", 6500000, "6,500,000"),
        ("{{ value | number(2) }}", 1234.5, "1,234.50"),
        ("{{ value | duration }}", 93784, "1d2h3m4s"),
        ("{{ value | duration }}", -90, "-1m30s"),
        ("{{ value | duration }}", 0, "0s"),
        ("{{ value | date }}", 1736170200, "2025-01-06 13:30 UTC"),
        ("{{ value | date('%Y-%m-%d') }}", "2025-01-06T13:30:00+01:00", "2025-01-06"),
        ("{{ value | percent }}", float("nan"), "nan"),
        ("{{ value | humanize }}", None, "None"),
    ],
    ids=[
        "percent",
        "percent-digits",
        "signed-negative",
        "signed-positive",
        "humanize-mega",
        "humanize-small",
        "number-grouped",
        "number-digits",
        "duration-days",
        "duration-negative",
        "duration-zero",
        "date-epoch",
        "date-iso-offset",
        "percent-nan",
        "humanize-none",
    ],
)
def test_filters_format_values(template: str, value: object, expected: str) -> None:
    assert render_annotations({"a": template}, value=value) == {"a": expected}


def test_render_annotations_kpi_and_key_result() -> None:
    rendered = render_annotations(
        {
            "summary": "{{ kpi.name }} at {{ value | humanize }} {{ kpi.unit }}",
            "risk": "{{ kpi.key_results_at_risk | join(', ') }}",
            "owner": "{{ key_result.owner }} {{ key_result.progress | percent(0) }}",
        },
        value=1500,
        kpi={"name": "orders", "unit": "orders", "key_results_at_risk": ["a", "b"]},
        key_result={"owner": "ops", "progress": 0.4},
    )
    assert rendered == {
        "summary": "orders at 1.5k orders",
        "risk": "a, b",
        "owner": "ops 40%",
    }


def test_render_annotations_undefined_keeps_text() -> None:
    rendered = render_annotations({"summary": "{{ missing }} now"}, value=1)
    assert rendered["summary"].startswith("{{ missing }} now (template error: ")
    assert "'missing' is undefined" in rendered["summary"]


def test_render_annotations_sandbox_blocks_internals() -> None:
    rendered = render_annotations(
        {"escape": "{{ labels.__class__.__mro__ }}"}, labels={"a": "b"}
    )
    assert "template error" in rendered["escape"]


def test_render_annotations_sandbox_blocks_mutation() -> None:
    labels = {"team": "ops"}
    rendered = render_annotations(
        {"mutate": "{{ labels.update({'team': 'x'}) }}"}, labels=labels
    )
    assert "template error" in rendered["mutate"]
    assert labels == {"team": "ops"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ value | percent }}", None),
        ("{{ value ", "Invalid template at line 1: unexpected end of template"),
        (
            "{{ value | persent }}",
            "Invalid template at line 1: No filter named 'persent'",
        ),
        ("{% if value %}x", "Invalid template at line 1: Unexpected end of template"),
    ],
    ids=["valid", "unclosed", "unknown-filter", "unclosed-block"],
)
def test_check_template_cases(text: str, expected: str | None) -> None:
    message = check_template(text)
    if expected is None:
        assert message is None
    else:
        assert message is not None
        assert message.startswith(expected), message


def test_check_annotations_unknown_variable() -> None:
    problems = check_annotations(
        {"summary": "{{ vlaue }} and {{ value }}"}, "threshold"
    )
    assert problems == {
        "summary": "Unknown template variable 'vlaue'. Did you mean 'value'? Rules "
        "of kind threshold provide alert, kpi, labels, value."
    }


def test_check_annotations_kind_variables() -> None:
    text = {"summary": "{{ key_result.owner }}"}
    assert check_annotations(text, "forecast") == {}
    problems = check_annotations(text, "threshold")
    assert problems["summary"].startswith("Unknown template variable 'key_result'.")
    kpi_text = {"summary": "{{ kpi.name }}"}
    assert check_annotations(kpi_text, "anomaly") == {}
    assert (
        "Unknown template variable 'kpi'"
        in check_annotations(kpi_text, "forecast")["summary"]
    )


def test_check_annotations_unknown_field() -> None:
    problems = check_annotations(
        {"summary": "{{ key_result.attainment }} {{ key_result['owner'] }}"},
        "forecast",
    )
    assert problems["summary"].startswith(
        "Unknown field 'attainment' of 'key_result'. Did you mean "
        "'attainment_probability'? Its fields are "
    )


def test_check_annotations_loop_variable_allowed() -> None:
    text = {"summary": "{% for item in kpi.downstream %}{{ item.kpi }}{% endfor %}"}
    assert check_annotations(text, "threshold") == {}


def test_loader_reports_template_problems(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            groups:
              - name: g
                rules:
                  - alert: OrdersLow
                    expr: kpi("orders") < 10
                    annotations:
                      summary: "{{ value | percnt }}"
                      detail: "{{ key_result.owner }}"
                  - alert: Miss
                    key_results: [orders_q1]
                    attainment_below: 0.5
                    annotations:
                      summary: "{{ key_result.owner }} {{ value | percent }}"
            """
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_rule_file(path)
    problems = [problem.split("rules.yaml:")[-1] for problem in caught.value.problems]
    assert problems == [
        "7: groups[0].rules[0].annotations.summary: Invalid template at line 1: "
        "No filter named 'percnt'.",
        "8: groups[0].rules[0].annotations.detail: Unknown template variable "
        "'key_result'. Rules of kind threshold provide alert, kpi, labels, value.",
    ]
