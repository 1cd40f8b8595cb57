"""Grafana dashboard generation from the configured KPIs and key results.

:func:`build_dashboard` returns a dashboard in Grafana's classic dashboard
JSON model: panels placed with ``gridPos`` on the 24-column grid, Prometheus
queries whose datasource is the ``${datasource}`` template variable, and that
variable declared in ``templating`` with type ``datasource``. On import,
Grafana therefore needs only the choice of a Prometheus data source.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config.model import Config, KeyResultConfig, KPIConfig

SCHEMA_VERSION = 39
"""Classic dashboard schema of Grafana 10.4 and 11.0; later Grafana versions
migrate it on import."""

GRID_COLUMNS = 24
PANEL_HEIGHT = 8
HALF_WIDTH = GRID_COLUMNS // 2
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
RATE_WINDOW = "$__rate_interval"
DURATION_QUANTILE = 0.95

ON_TRACK_MIN_PROBABILITY = 0.7
AT_RISK_MIN_PROBABILITY = 0.4
"""Colour steps of probability panels, matching the key result status bands."""


def build_dashboard(
    config: Config, *, title: str = "krwatch", uid: str = "krwatch"
) -> dict[str, Any]:
    """Build a Grafana dashboard for ``config``'s KPIs and key results.

    Parameters
    ----------
    config : Config
        Loaded configuration; each key result and KPI gets its own panels.
    title : str
        Dashboard title.
    uid : str
        Dashboard uid; Grafana replaces a dashboard with the same uid on
        import.

    Returns
    -------
    dict
        The dashboard JSON model, ready for ``json.dump``.
    """
    layout = _Layout()
    layout.row("Key results")
    layout.add(_probability_panel(config.key_results), HALF_WIDTH)
    layout.add(_status_panel(config.key_results), HALF_WIDTH)
    for key_result in config.key_results:
        layout.add(_progress_panel(key_result), HALF_WIDTH)
        layout.add(_forecast_panel(key_result), HALF_WIDTH)
    layout.row("KPIs")
    for kpi in config.kpis:
        layout.add(_kpi_panel(kpi), HALF_WIDTH)
    layout.row("Alerts")
    for panel, width in _alert_panels():
        layout.add(panel, width)
    layout.row("krwatch health")
    for panel in _health_panels():
        layout.add(panel, HALF_WIDTH)
    return {
        "annotations": {"list": [_builtin_annotation()]},
        "description": "Key results, KPIs, alerts and health of one krwatch instance.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": layout.panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["krwatch"],
        "templating": {"list": [_datasource_variable()]},
        "time": {"from": "now-7d", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Return every ``krwatch_`` metric name that the dashboard's queries use.

    Histogram series (``_bucket``, ``_sum``, ``_count``) are returned under
    their own names, as Prometheus exposes them.
    """
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names.update(_metric_names(str(target.get("expr", ""))))
    return names


def _metric_names(expr: str) -> Iterator[str]:
    word = ""
    for character in expr + " ":
        if character.isalnum() or character == "_":
            word += character
            continue
        if word.startswith("krwatch_"):
            yield word
        word = ""


@dataclass
class _Layout:
    """Places panels left to right on Grafana's grid and numbers them."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def row(self, title: str) -> None:
        self._new_line()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": self._y},
                "id": next(self._ids),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self._y += 1

    def add(
        self, panel: dict[str, Any], width: int, height: int = PANEL_HEIGHT
    ) -> None:
        if self._x + width > GRID_COLUMNS:
            self._new_line()
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        panel["id"] = next(self._ids)
        self.panels.append(panel)
        self._x += width
        self._row_height = max(self._row_height, height)

    def _new_line(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def _label_value(text: str) -> str:
    """Quote ``text`` as a PromQL label value."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _regex_alternatives(names: Iterable[str]) -> str:
    """Quote a PromQL regex label value that matches exactly one of ``names``."""
    return _label_value("|".join(re.escape(name) for name in names))


def _target(expr: str, legend: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref,
        **extra,
    }


def _refs() -> Iterator[str]:
    return (chr(ord("A") + index) for index in range(26))


def _targets(queries: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        _target(expr, legend, ref)
        for (expr, legend), ref in zip(queries, _refs(), strict=False)
    ]


def _timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    axis_label: str = "",
    overrides: list[dict[str, Any]] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisLabel": axis_label,
            "drawStyle": "line",
            "fillOpacity": 0,
            "lineWidth": 2,
            "showPoints": "never",
            "spanNulls": False,
        },
        "unit": unit,
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": targets,
        "title": title,
        "type": "timeseries",
    }


def _override(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": key, "value": value} for key, value in properties.items()
        ],
    }


def _band_overrides(
    lower: str, upper: str, opacity: int, color: str
) -> list[dict[str, Any]]:
    """Draw the area between the ``lower`` and ``upper`` series, without lines."""
    fixed = {"mode": "fixed", "fixedColor": color}
    return [
        _override(
            upper,
            {
                "custom.fillBelowTo": lower,
                "custom.fillOpacity": opacity,
                "custom.lineWidth": 0,
                "color": fixed,
            },
        ),
        _override(lower, {"custom.lineWidth": 0, "color": fixed}),
    ]


def _key_result_selector(key_result: KeyResultConfig) -> str:
    return f"{{key_result={_label_value(key_result.name)}}}"


def _progress_panel(key_result: KeyResultConfig) -> dict[str, Any]:
    selector = _key_result_selector(key_result)
    targets = _targets(
        [
            (f"krwatch_key_result_progress{selector}", "progress"),
            (f"krwatch_key_result_expected_progress{selector}", "expected progress"),
        ]
    )
    overrides = [
        _override(
            "expected progress",
            {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}},
        )
    ]
    return _timeseries(
        f"{key_result.name}: progress vs expected",
        f"Progress of {key_result.name} (objective {key_result.objective}, owner "
        f"{key_result.owner}) from baseline {key_result.baseline:g} to target "
        f"{key_result.target:g}, against the linear glide path.",
        targets,
        unit="percentunit",
        overrides=overrides,
    )


def _forecast_panel(key_result: KeyResultConfig) -> dict[str, Any]:
    selector = _key_result_selector(key_result)
    name = _label_value(key_result.name)
    queries = [
        (f"krwatch_key_result_forecast{selector}", "forecast"),
        (f"krwatch_key_result_target{selector}", "target"),
        (f"krwatch_key_result_current{selector}", "current"),
    ]
    for interval in ("80", "95"):
        band = f'{{key_result={name},interval="{interval}"}}'
        queries.append(
            (f"krwatch_key_result_forecast_lower{band}", f"lower {interval}%")
        )
        queries.append(
            (f"krwatch_key_result_forecast_upper{band}", f"upper {interval}%")
        )
    overrides = [
        *_band_overrides("lower 80%", "upper 80%", 35, "purple"),
        *_band_overrides("lower 95%", "upper 95%", 15, "purple"),
        _override(
            "target",
            {
                "color": {"mode": "fixed", "fixedColor": "red"},
                "custom.lineStyle": {"fill": "dot", "dash": [0, 10]},
            },
        ),
        _override("forecast", {"color": {"mode": "fixed", "fixedColor": "purple"}}),
    ]
    return _timeseries(
        f"{key_result.name}: forecast at the due date",
        f"Median forecast of {key_result.name} at its due date with the 80% and "
        f"95% prediction intervals, the target and the value so far "
        f"({key_result.measure}).",
        _targets(queries),
        overrides=overrides,
    )


def _probability_panel(key_results: Sequence[KeyResultConfig]) -> dict[str, Any]:
    names = _regex_alternatives(kr.name for kr in key_results)
    targets = _targets(
        [
            (
                f"krwatch_key_result_attainment_probability{{key_result=~{names}}}",
                "{{key_result}}",
            )
        ]
    )
    panel = _timeseries(
        "Attainment probability",
        "Probability that each key result meets its target at its due date. "
        f"Below {AT_RISK_MIN_PROBABILITY:g} the status is off_track, below "
        f"{ON_TRACK_MIN_PROBABILITY:g} at_risk.",
        targets,
        unit="percentunit",
        minimum=0,
        maximum=1,
    )
    panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {
        "mode": "line+area"
    }
    panel["fieldConfig"]["defaults"]["thresholds"] = _probability_thresholds()
    return panel


def _probability_thresholds() -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [
            {"color": "red", "value": None},
            {"color": "orange", "value": AT_RISK_MIN_PROBABILITY},
            {"color": "green", "value": ON_TRACK_MIN_PROBABILITY},
        ],
    }


def _status_panel(key_results: Sequence[KeyResultConfig]) -> dict[str, Any]:
    names = _regex_alternatives(kr.name for kr in key_results)
    expr = (
        "max by (key_result, owner, status) "
        f"(krwatch_key_result_status{{key_result=~{names}}}) == 1"
    )
    target = _target(expr, "{{key_result}} ({{owner}}): {{status}}", "A")
    target["range"] = False
    target["instant"] = True
    return {
        "datasource": DATASOURCE,
        "description": "Current status of each key result and its owner.",
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "fixed", "fixedColor": "text"},
                "unit": "none",
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "none",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "name",
        },
        "targets": [target],
        "title": "Key result status",
        "type": "stat",
    }


def _kpi_panel(kpi: KPIConfig) -> dict[str, Any]:
    selector = f"{{kpi={_label_value(kpi.name)}}}"
    queries = [
        (f"krwatch_kpi_value{selector}", "value"),
        (f"krwatch_detector_band_lower{selector}", "expected lower ({{rule}})"),
        (f"krwatch_detector_band_upper{selector}", "expected upper ({{rule}})"),
    ]
    overrides = [
        {
            "matcher": {"id": "byRegexp", "options": "expected upper.*"},
            "properties": [
                {"id": "custom.lineWidth", "value": 1},
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [4, 4]}},
            ],
        },
        {
            "matcher": {"id": "byRegexp", "options": "expected lower.*"},
            "properties": [
                {"id": "custom.lineWidth", "value": 1},
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [4, 4]}},
            ],
        },
    ]
    description = kpi.help or f"KPI {kpi.name} from source {kpi.source}."
    return _timeseries(
        kpi.name,
        f"{description} Dashed lines: the band each anomaly rule's detector "
        "expects the value in.",
        _targets(queries),
        axis_label=kpi.unit,
        overrides=overrides,
    )


def _alert_panels() -> list[tuple[dict[str, Any], int]]:
    history = _timeseries(
        "Alerts by state",
        "Number of pending and firing alerts per rule.",
        _targets(
            [
                (
                    "sum by (alertname, alertstate) (krwatch_alerts)",
                    "{{alertname}} {{alertstate}}",
                )
            ]
        ),
        minimum=0,
    )
    history["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "bars"
    history["fieldConfig"]["defaults"]["custom"]["stacking"] = {"mode": "normal"}
    current = _target("krwatch_alerts", "", "A", format="table", instant=True)
    current["range"] = False
    table = {
        "datasource": DATASOURCE,
        "description": "Alerts that are pending or firing now, with their labels.",
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "targets": [current],
        "title": "Active alerts",
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "Value": True}},
            }
        ],
        "type": "table",
    }
    return [(history, HALF_WIDTH), (table, HALF_WIDTH)]


def _quantile(metric: str, by: str) -> str:
    return (
        f"histogram_quantile({DURATION_QUANTILE:g}, sum by (le{by}) "
        f"(rate({metric}_bucket[{RATE_WINDOW}])))"
    )


def _health_panels() -> list[dict[str, Any]]:
    rate = RATE_WINDOW
    percentile = f"p{round(DURATION_QUANTILE * 100)}"
    return [
        _timeseries(
            "Source errors",
            "Failed polls and rejected samples per second, by source and reason.",
            _targets(
                [
                    (
                        "sum by (source, reason) "
                        f"(rate(krwatch_source_errors_total[{rate}]))",
                        "{{source}} {{reason}}",
                    )
                ]
            ),
            unit="reqps",
            minimum=0,
        ),
        _timeseries(
            "Sources up",
            "1 while the last poll of a source succeeded.",
            _targets([("krwatch_source_up", "{{source}}")]),
            minimum=0,
            maximum=1,
        ),
        _timeseries(
            "Evaluation durations",
            f"{percentile} duration of rule group cycles, key result evaluations "
            "and source polls.",
            _targets(
                [
                    (
                        _quantile("krwatch_rule_group_duration_seconds", ", group"),
                        "rule group {{group}}",
                    ),
                    (
                        _quantile("krwatch_key_result_evaluation_duration_seconds", ""),
                        "key results",
                    ),
                    (
                        _quantile("krwatch_source_poll_duration_seconds", ", source"),
                        "poll {{source}}",
                    ),
                ]
            ),
            unit="s",
            minimum=0,
        ),
        _timeseries(
            "Rule evaluation failures",
            "Rule evaluations that failed per second, by group.",
            _targets(
                [
                    (
                        "sum by (group) "
                        f"(rate(krwatch_rule_evaluation_failures_total[{rate}]))",
                        "{{group}}",
                    )
                ]
            ),
            unit="reqps",
            minimum=0,
        ),
        _timeseries(
            "Outbox queue",
            "Notifications waiting in the outbox, and the age of the oldest one.",
            _targets(
                [
                    ("sum by (receiver) (krwatch_outbox_queue_length)", "{{receiver}}"),
                    (
                        "max by (receiver) (krwatch_outbox_oldest_age_seconds)",
                        "oldest {{receiver}}",
                    ),
                ]
            ),
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": "oldest .*"},
                    "properties": [
                        {"id": "unit", "value": "s"},
                        {"id": "custom.axisPlacement", "value": "right"},
                    ],
                }
            ],
            minimum=0,
        ),
        _timeseries(
            "Notifications",
            "Notifications sent, failed and dropped per second, by receiver.",
            _targets(
                [
                    (
                        "sum by (receiver) "
                        f"(rate(krwatch_notifications_sent_total[{rate}]))",
                        "sent {{receiver}}",
                    ),
                    (
                        "sum by (receiver) "
                        f"(rate(krwatch_notifications_failed_total[{rate}]))",
                        "failed {{receiver}}",
                    ),
                    (
                        "sum by (receiver) "
                        f"(rate(krwatch_notifications_dropped_total[{rate}]))",
                        "dropped {{receiver}}",
                    ),
                ]
            ),
            unit="reqps",
            minimum=0,
        ),
        _timeseries(
            "Configuration reloads",
            "1 while the last configuration load or reload succeeded.",
            _targets(
                [("krwatch_config_last_reload_successful", "last reload successful")]
            ),
            minimum=0,
            maximum=1,
        ),
    ]


def _datasource_variable() -> dict[str, Any]:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": DATASOURCE_VARIABLE,
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def _builtin_annotation() -> dict[str, Any]:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
