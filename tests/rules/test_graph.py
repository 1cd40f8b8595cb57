"""Tests of the KPI dependency graph and the validation of ``drives`` edges."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from rules.graph import (
    Edge,
    KPIGraph,
    UpstreamAlert,
    cause_annotations,
    find_cycles,
    notification_kpi,
    rule_kpis,
)
from rules.lifecycle import FIRING, PENDING, AlertState
from rules.model import ForecastRule, Location, ThresholdRule


class NoSettingsSource:
    settings_class = None
    query_class = None


CONFIG = """\
sources:
  - name: shop
    type: plain
kpis:
  - name: ad_spend
    source: shop
    help: Daily ad spend.
    unit: USD
    drives: [{kpi: orders, lag: 2d}]
  - name: orders
    source: shop
    drives:
      - {kpi: delivery_load, lag: 1d}
      - {kpi: churn, lag: 14d}
  - name: delivery_load
    source: shop
    drives: [{kpi: churn, lag: 7d}]
  - name: churn
    source: shop
objectives:
  - name: retain
    owner: retention-team
    key_results:
      - name: churn_q1
        kpi: churn
        measure: level
        direction: decrease
        baseline: 0.06
        target: 0.04
        period: quarter
      - name: orders_q1
        kpi: orders
        measure: cumulative
        direction: increase
        baseline: 0
        target: 1000
        period: quarter
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "krwatch.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(
        path, source_types={"plain": NoSettingsSource}, receiver_types={}
    )


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


@pytest.fixture
def graph(tmp_path: Path) -> KPIGraph:
    config = load(tmp_path, CONFIG)
    return KPIGraph.from_config(config)  # type: ignore[arg-type]


def test_config_drives_reads_edges(tmp_path: Path) -> None:
    config = load(tmp_path, CONFIG)
    orders = config.kpis[1]  # type: ignore[attr-defined]
    assert [edge.kpi for edge in orders.drives] == ["delivery_load", "churn"]
    assert orders.drives[0].lag == timedelta(days=1)
    assert config.kpis[3].drives == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("drives", "expected"),
    [
        (
            "[{kpi: chrun}]",
            r"kpis\[0\]\.drives\[0\]\.kpi: Unknown KPI 'chrun'\. Did you mean 'churn'\?",
        ),
        (
            "[{kpi: orders}]",
            r"kpis\[0\]\.drives\[0\]\.kpi: KPI 'orders' drives itself; name another",
        ),
        (
            "[{kpi: churn}, {kpi: churn, lag: 1d}]",
            r"kpis\[0\]\.drives\[1\]\.kpi: KPI 'orders' already drives 'churn' at "
            r"line 7; keep one edge",
        ),
        (
            "[{kpi: churn, lag: soon}]",
            r"kpis\[0\]\.drives\[0\]\.lag: Invalid duration 'soon'",
        ),
        (
            "[{kpi: churn, delay: 1d}]",
            r"kpis\[0\]\.drives\[0\]\.delay: Unknown key 'delay'\.",
        ),
    ],
    ids=["unknown-target", "self-edge", "repeated-edge", "bad-lag", "unknown-key"],
)
def test_config_drives_invalid_edge(tmp_path: Path, drives: str, expected: str) -> None:
    text = f"""\
    sources:
      - name: shop
        type: plain
    kpis:
      - name: orders
        source: shop
        drives: {drives}
      - name: churn
        source: shop
    """
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert re.search(r"krwatch\.yaml:7: " + expected, problems[0]), problems[0]


def test_config_drives_cycle_reported(tmp_path: Path) -> None:
    text = """\
    sources:
      - name: shop
        type: plain
    kpis:
      - name: a
        source: shop
        drives: [{kpi: b}]
      - name: b
        source: shop
        drives: [{kpi: c}]
      - name: c
        source: shop
        drives: [{kpi: a}]
      - name: d
        source: shop
        drives: [{kpi: a}]
    """
    problems = problems_of(tmp_path, text)
    assert [problem.split("/")[-1] for problem in problems] == [
        "krwatch.yaml:13: kpis[2].drives[0].kpi: The drives edges form a cycle: "
        "a -> b -> c -> a. Remove one of these edges, because the KPI graph must "
        "have no cycle."
    ]


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": ["b"], "b": ["c"]}, []),
        ({"a": ["a"]}, [["a"]]),
        ({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]}, [["a", "b"], ["c", "d"]]),
        ({"x": ["y", "z"], "y": ["z"], "z": ["x"]}, [["x", "z"]]),
    ],
    ids=["chain", "self-loop", "two-cycles", "shortest-cycle"],
)
def test_find_cycles_cases(
    edges: dict[str, list[str]], expected: list[list[str]]
) -> None:
    assert find_cycles(edges) == expected


def test_find_cycles_long_chain_needs_no_recursion() -> None:
    edges = {f"k{index}": [f"k{index + 1}"] for index in range(5000)}
    edges["k5000"] = ["k0"]
    cycles = find_cycles(edges)
    assert len(cycles) == 1
    assert len(cycles[0]) == 5001


def test_graph_downstream_shortest_lag(graph: KPIGraph) -> None:
    downstream = graph.downstream("ad_spend")
    assert [(item.kpi, item.lag) for item in downstream] == [
        ("orders", timedelta(days=2)),
        ("delivery_load", timedelta(days=3)),
        ("churn", timedelta(days=10)),
    ]
    assert downstream[2].path == ("ad_spend", "orders", "delivery_load", "churn")


def test_graph_upstream_transitive(graph: KPIGraph) -> None:
    assert graph.upstream("churn") == {"ad_spend", "orders", "delivery_load"}
    assert graph.upstream("ad_spend") == set()


def test_graph_key_results_at_risk(graph: KPIGraph) -> None:
    assert graph.key_results_at_risk("ad_spend") == ["churn_q1", "orders_q1"]
    assert graph.key_results_at_risk("delivery_load") == ["churn_q1"]
    assert graph.key_results_at_risk("churn") == ["churn_q1"]


def test_graph_kpi_context_blast_radius(graph: KPIGraph) -> None:
    context = graph.kpi_context("ad_spend", {"region": "eu"})
    assert context["name"] == "ad_spend"
    assert context["help"] == "Daily ad spend."
    assert context["unit"] == "USD"
    assert context["labels"] == {"region": "eu"}
    assert context["key_results_at_risk"] == ["churn_q1", "orders_q1"]
    assert context["downstream"] == [
        {
            "kpi": "orders",
            "lag_seconds": 172800.0,
            "path": ["ad_spend", "orders"],
            "key_results": ["orders_q1"],
        },
        {
            "kpi": "delivery_load",
            "lag_seconds": 259200.0,
            "path": ["ad_spend", "orders", "delivery_load"],
            "key_results": [],
        },
        {
            "kpi": "churn",
            "lag_seconds": 864000.0,
            "path": ["ad_spend", "orders", "delivery_load", "churn"],
            "key_results": ["churn_q1"],
        },
    ]


def make_rule(expr: str) -> ThresholdRule:
    from rules.expr import parse

    return ThresholdRule(
        alert="Test",
        location=Location(path=Path("rules.yaml"), line=1),
        expr=expr,
        expression=parse(expr),
        labels={"severity": "page"},
    )


def test_rule_kpis_in_written_order(graph: KPIGraph) -> None:
    rule = make_rule('kpi("orders") / kpi("delivery_load") > 2 and kpi("orders") > 1')
    assert rule_kpis(rule, graph) == ["orders", "delivery_load"]
    forecast = ForecastRule(
        alert="Miss",
        location=Location(path=Path("rules.yaml"), line=1),
        key_results=("orders_q1", "churn_q1"),
        attainment_below=0.5,
    )
    assert rule_kpis(forecast, graph) == ["orders", "churn"]


def test_notification_kpi_strips_rule_labels(graph: KPIGraph) -> None:
    rule = make_rule('kpi("delivery_load") > 5')
    labels = {"alertname": "Test", "severity": "page", "region": "eu"}
    context = notification_kpi(graph, rule, labels)
    assert context is not None
    assert context["name"] == "delivery_load"
    assert context["labels"] == {"region": "eu"}
    assert context["key_results_at_risk"] == ["churn_q1"]


def firing(alert: str, kpis: list[str], state: str = FIRING) -> AlertState:
    return AlertState(
        alert=alert,
        group="g",
        labels={"alertname": alert, "region": "eu"},
        state=state,
        extra={"kpis": kpis},
    )


def test_graph_firing_upstream_finds_causes(graph: KPIGraph) -> None:
    alerts = [
        firing("SpendSpike", ["ad_spend"]),
        firing("OrdersPending", ["orders"], state=PENDING),
        firing("ChurnHigh", ["churn"]),
        firing("Unrelated", ["weather"]),
    ]
    causes = graph.firing_upstream(["churn"], alerts)
    assert [cause.alert for cause in causes] == ["SpendSpike"]
    assert causes[0].kpi == "ad_spend"
    assert causes[0].downstream == "churn"
    assert graph.firing_upstream(["ad_spend"], alerts) == []


def test_cause_annotations_text() -> None:
    cause = UpstreamAlert(
        alert="SpendSpike",
        fingerprint="f",
        labels={"alertname": "SpendSpike", "region": "eu"},
        kpi="ad_spend",
        downstream="churn",
    )
    assert cause_annotations([cause]) == {
        "root_cause": "SpendSpike{region=eu} fires on KPI 'ad_spend', upstream of "
        "'churn'."
    }
    assert cause_annotations([]) == {}


def test_graph_to_mermaid(graph: KPIGraph) -> None:
    text = graph.to_mermaid()
    assert text.startswith("flowchart LR\n")
    assert '    kpi_0["ad_spend"]' in text
    assert "    kpi_0 -- 2d --> kpi_3" in text
    assert '    kr_0(["churn_q1"])' in text
    assert "    kpi_1 -.-> kr_0" in text


def test_graph_to_dot() -> None:
    graph = KPIGraph(
        [Edge(upstream='say "hi"', downstream="b", lag=timedelta(hours=36))],
        key_results={"kr": "b"},
    )
    assert graph.to_dot() == (
        "digraph kpis {\n"
        "    rankdir=LR;\n"
        "    node [shape=box];\n"
        '    "b";\n'
        '    "say \\"hi\\"";\n'
        '    "say \\"hi\\"" -> "b" [label="1d12h"];\n'
        '    "kr:kr" [shape=ellipse, label="kr"];\n'
        '    "b" -> "kr:kr" [style=dashed];\n'
        "}\n"
    )
