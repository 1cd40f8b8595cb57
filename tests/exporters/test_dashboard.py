"""The generated Grafana dashboard: structure, queries and the shipped example."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters.dashboard import (
    GRID_COLUMNS,
    SCHEMA_VERSION,
    build_dashboard,
    dashboard_metric_names,
)
from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import Daemon

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPOSITORY / "config.example.yaml"
EXAMPLE_DASHBOARD = REPOSITORY / "examples" / "grafana" / "krwatch.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WAIT_SECONDS = 30.0
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


def example_copy(folder: Path) -> Path:
    """Copy the example config with a free port, a fresh store and absolute paths."""
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["server"]["listen"] = "127.0.0.1:0"
    document["storage"]["path"] = str(folder / "krwatch.db")
    for source in document["sources"]:
        if "path" in source:
            source["path"] = str(REPOSITORY / source["path"])
    for receiver in document["receivers"]:
        if receiver.get("path") not in (None, "stdout"):
            receiver["path"] = str(folder / receiver["path"])
    document["rule_files"] = [str(REPOSITORY / glob) for glob in document["rule_files"]]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return build_dashboard(load_config(EXAMPLE_CONFIG))


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_dashboard_top_level_model(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["uid"] == "krwatch"
    assert dashboard["title"] == "krwatch"
    assert dashboard["id"] is None
    assert dashboard["time"] == {"from": "now-7d", "to": "now"}
    variables = dashboard["templating"]["list"]
    assert [variable["name"] for variable in variables] == ["datasource"]
    assert variables[0]["type"] == "datasource"
    assert variables[0]["query"] == "prometheus"
    json.dumps(dashboard, allow_nan=False)


def test_dashboard_panels_fit_grid(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], int] = {}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= GRID_COLUMNS
        assert grid["h"] >= 1
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


def test_dashboard_targets_use_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels_of(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["expr"].count("(") == target["expr"].count(")")
            assert target["expr"].count("{") == target["expr"].count("}")


def test_dashboard_panels_per_key_result_and_kpi(dashboard: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in panels_of(dashboard)}
    config = load_config(EXAMPLE_CONFIG)
    for key_result in config.key_results:
        assert f"{key_result.name}: progress vs expected" in titles
        assert f"{key_result.name}: forecast at the due date" in titles
    by_title = {panel["title"]: panel for panel in panels_of(dashboard)}
    for kpi in config.kpis:
        exprs = [target["expr"] for target in by_title[kpi.name]["targets"]]
        assert exprs == [
            f'krwatch_kpi_value{{kpi="{kpi.name}"}}',
            f'krwatch_detector_band_lower{{kpi="{kpi.name}"}}',
            f'krwatch_detector_band_upper{{kpi="{kpi.name}"}}',
        ]


def test_dashboard_forecast_panel_fills_bands(dashboard: dict[str, Any]) -> None:
    panel = next(
        p
        for p in panels_of(dashboard)
        if p["title"].endswith("forecast at the due date")
    )
    legends = {target["legendFormat"] for target in panel["targets"]}
    assert {"lower 80%", "upper 80%", "lower 95%", "upper 95%"} <= legends
    fills = {
        override["matcher"]["options"]: prop["value"]
        for override in panel["fieldConfig"]["overrides"]
        for prop in override["properties"]
        if prop["id"] == "custom.fillBelowTo"
    }
    assert fills == {"upper 80%": "lower 80%", "upper 95%": "lower 95%"}


def test_dashboard_reaches_required_metric_groups(dashboard: dict[str, Any]) -> None:
    names = dashboard_metric_names(dashboard)
    for required in (
        "krwatch_key_result_progress",
        "krwatch_key_result_expected_progress",
        "krwatch_key_result_attainment_probability",
        "krwatch_key_result_forecast_lower",
        "krwatch_key_result_forecast_upper",
        "krwatch_detector_band_lower",
        "krwatch_detector_band_upper",
        "krwatch_alerts",
        "krwatch_source_errors_total",
        "krwatch_rule_group_duration_seconds_bucket",
        "krwatch_key_result_evaluation_duration_seconds_bucket",
        "krwatch_outbox_queue_length",
    ):
        assert required in names


def test_dashboard_quotes_label_values() -> None:
    config = load_config(EXAMPLE_CONFIG)
    kpi = config.kpis[0]
    odd = type(kpi)(name='we"ird\\kpi', source=kpi.source)
    dashboard = build_dashboard(replace(config, kpis=(odd,)))
    exprs = [
        target["expr"]
        for panel in panels_of(dashboard)
        if panel["title"] == odd.name
        for target in panel["targets"]
    ]
    assert exprs[0] == 'krwatch_kpi_value{kpi="we\\"ird\\\\kpi"}'


def test_dashboard_regex_escapes_key_result_names(dashboard: dict[str, Any]) -> None:
    panel = next(
        p for p in panels_of(dashboard) if p["title"] == "Attainment probability"
    )
    assert panel["targets"][0]["expr"] == (
        "krwatch_key_result_attainment_probability"
        '{key_result=~"weekly_passengers|cost_per_click_ceiling"}'
    )


def test_example_dashboard_is_current(dashboard: dict[str, Any]) -> None:
    shipped = json.loads(EXAMPLE_DASHBOARD.read_text())
    assert shipped == dashboard, (
        "examples/grafana/krwatch.json is out of date; run krwatch dashboard "
        "-c config.example.yaml -o examples/grafana/krwatch.json."
    )


def test_dashboard_command_writes_file(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    status = main(
        ["dashboard", "-c", str(EXAMPLE_CONFIG), "-o", str(output), "--uid", "x"]
    )
    written = json.loads(output.read_text())
    assert status == 0
    assert written["uid"] == "x"
    assert written["panels"]


def test_dashboard_command_rejects_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  listen: nowhere\n")
    output = tmp_path / "out.json"
    status = main(["dashboard", "-c", str(config), "-o", str(output)])
    error = capsys.readouterr().err
    assert status == 1
    assert "Invalid listen address 'nowhere'" in error
    assert "no dashboard written." in error
    assert not output.exists()


def exposed_names(text: str) -> set[str]:
    """Return the sample names /metrics exposes, with every histogram suffix."""
    names: set[str] = set()
    for line in text.splitlines():
        typed = TYPE_LINE.match(line)
        if typed is not None:
            name, kind = typed.groups()
            names.add(name)
            names.update(name + suffix for suffix in SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    daemon = Daemon(example_copy(tmp_path_factory.mktemp("dashboard")))
    daemon.start()
    url = f"http://127.0.0.1:{daemon.server.port}/metrics"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
            if (
                "krwatch_rule_group_duration_seconds_bucket" in text
                and "krwatch_key_result_attainment_probability{" in text
            ):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"/metrics lacked evaluations after {WAIT_SECONDS}s.")
        yield text
    finally:
        daemon.stop()


def test_dashboard_metrics_exposed_by_krwatch(
    dashboard: dict[str, Any], metrics_text: str
) -> None:
    missing = dashboard_metric_names(dashboard) - exposed_names(metrics_text)
    assert missing == set()


def test_metrics_doc_lists_exposed_families(metrics_text: str) -> None:
    documented = (REPOSITORY / "docs" / "metrics.md").read_text()
    families = {
        typed.group(1)
        for line in metrics_text.splitlines()
        if (typed := TYPE_LINE.match(line))
        and typed.group(1).startswith("krwatch_")
        and not typed.group(1).endswith("_created")
    }

    undocumented = {
        name
        for name in families
        if f"`{name}`" not in documented and f"`{name}_total`" not in documented
    }

    assert len(families) > 20
    assert undocumented == set()


def test_exposed_names_parse_histograms() -> None:
    text = (
        "# HELP x_seconds Time.\n# TYPE x_seconds histogram\n"
        'x_seconds_bucket{le="1"} 1\n# TYPE y gauge\ny{a="b"} 2\n'
    )
    assert exposed_names(text) == {
        "x_seconds",
        "x_seconds_bucket",
        "x_seconds_sum",
        "x_seconds_count",
        "x_seconds_created",
        "y",
    }
