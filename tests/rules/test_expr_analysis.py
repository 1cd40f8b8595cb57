"""Tests of the static checks on parsed expressions."""

from __future__ import annotations

import pytest

from rules.expr import (
    parse,
    reference_errors,
    referenced_key_results,
    referenced_kpis,
    validate,
)


@pytest.mark.parametrize(
    ("text", "kpis"),
    [
        ("1 + 2", frozenset()),
        ('kpi("orders") > 1', frozenset({"orders"})),
        (
            'pct_change(kpi("orders"), 7d) > 0.1 and on() '
            'pct_change(kpi("delivery_capacity"), 7d) < 0.05',
            frozenset({"orders", "delivery_capacity"}),
        ),
        ('absent(avg_over(kpi("signups", region="eu"), 1h))', frozenset({"signups"})),
        ('kpi("a") / kpi("a")', frozenset({"a"})),
    ],
    ids=["none", "one", "two", "nested", "repeated"],
)
def test_referenced_kpis_of_expressions(text: str, kpis: frozenset[str]) -> None:
    assert referenced_kpis(parse(text)) == kpis


def test_referenced_key_results_of_expression() -> None:
    expr = parse(
        'progress("churn_q1") < expected_progress("churn_q1") - 0.1 '
        'or attainment("nps_q1") < 0.5 and on() forecast("revenue_q1") < 10'
    )

    assert referenced_key_results(expr) == {"churn_q1", "nps_q1", "revenue_q1"}
    assert referenced_kpis(expr) == frozenset()


def test_validate_accepts_known_names() -> None:
    expr = parse('kpi("orders") > 1 and on() attainment("churn_q1") < 0.5')

    assert validate(expr, known_kpis={"orders"}, known_key_results={"churn_q1"}) == []


def test_validate_suggests_close_kpi_name() -> None:
    expr = parse('kpi("ordrs") > 1')

    assert validate(expr, known_kpis=["orders", "signups"]) == [
        "Unknown KPI 'ordrs'; did you mean 'orders'?"
    ]


def test_validate_unknown_kpi_without_close_name() -> None:
    expr = parse('kpi("zzz") > 1')

    assert validate(expr, known_kpis=["orders"]) == [
        "Unknown KPI 'zzz'; define it under kpis: in the main configuration or fix "
        "the name."
    ]


def test_validate_suggests_close_key_result_name() -> None:
    expr = parse('progress("churn_q2")')

    assert validate(expr, known_key_results=["churn_q1"]) == [
        "Unknown key result 'churn_q2'; did you mean 'churn_q1'?"
    ]


def test_validate_skips_checks_without_known_names() -> None:
    expr = parse('kpi("anything") > 1 and on() progress("whatever") < 1')

    assert validate(expr) == []


def test_reference_errors_are_sorted_by_offset() -> None:
    text = 'progress("nokr") < 1 or kpi("nokpi") > 1 or kpi("orders") > 1'
    expr = parse(text)

    errors = reference_errors(expr, known_kpis={"orders"}, known_key_results=set())

    assert [error.offset for error in errors] == [
        text.index('"nokr"'),
        text.index('kpi("nokpi")'),
    ]
    assert errors[0].message.startswith("Unknown key result 'nokr'")
    assert errors[1].message.startswith("Unknown KPI 'nokpi'")
