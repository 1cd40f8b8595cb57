"""HTTP API handlers: health, reload, the /api/v1 endpoints and the status page.

Every /api/v1 response is the envelope ``{"status": "success", "data": ...}``
or ``{"status": "error", "error": "<sentence>"}``. The OpenAPI 3.1 document
``monitor/static/openapi.json``, served at ``/api/v1/openapi.json``,
describes each endpoint and its schema.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from monitor._api_silences import add_silence_routes
from monitor.durations import format_duration
from monitor.server import Response, Routes
from monitor.statuspage import (
    DEFAULT_CHART_POINTS,
    MAX_CHART_POINTS,
    key_result_chart,
    render_status_page,
    sort_by_risk,
)
from rules.expr import referenced_kpis
from rules.graph import ALERT_KPIS_KEY, KPIGraph
from rules.lifecycle import AlertState
from rules.model import ForecastRule, Rule, RuleGroup, ThresholdRule

if TYPE_CHECKING:
    from monitor.config.model import Config
    from monitor.daemon import Daemon
    from monitor.keyresults import KeyResultStatus

STATIC_PREFIX = "/static/"
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
"""Suffixes served from ``monitor/static``; other files there are not served."""

ACTIVE_STATES = ("pending", "firing")
MIN_REFRESH_SECONDS = 5.0
MAX_REFRESH_SECONDS = 60.0
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def build_routes(daemon: Daemon) -> Routes:
    """Return the routes of ``daemon``'s HTTP server."""

    def token() -> str | None:
        secret = daemon.config.server.api_token
        return None if secret is None else secret.reveal()

    routes = Routes(daemon.registry, token)
    routes.add("GET", "/-/healthy", lambda _: Response.json({"status": "healthy"}))
    routes.add("GET", "/-/ready", lambda _: _ready(daemon))
    routes.add("POST", "/-/reload", lambda _: _reload(daemon), protected=True)
    routes.add("GET", "/api/v1/alerts", lambda _: _ok(alerts_data(daemon)))
    routes.add("GET", "/api/v1/rules", lambda _: _ok(rules_data(daemon)))
    routes.add("GET", "/api/v1/kpis", lambda _: _ok(kpis_data(daemon)))
    routes.add("GET", "/api/v1/key_results", lambda body: _key_results(daemon, body))
    routes.add("GET", "/api/v1/sources", lambda _: _ok(sources_data(daemon)))
    routes.add("GET", "/api/v1/openapi.json", lambda _: _static("openapi.json"))
    routes.add_prefix("GET", STATIC_PREFIX, _static_file)
    routes.add("GET", "/", lambda _: _status_page(daemon))
    add_silence_routes(routes, daemon.store)
    return routes


def _ok(data: Any) -> Response:
    return Response.json({"status": "success", "data": data})


def _ready(daemon: Daemon) -> Response:
    if daemon.ready.is_set():
        return Response.json({"status": "ready"})
    return Response.error(HTTPStatus.SERVICE_UNAVAILABLE, "krwatch is starting.")


def _reload(daemon: Daemon) -> Response:
    ok, problems = daemon.reload()
    if ok:
        return _ok({"reloaded": True})
    return Response.json(
        {
            "status": "error",
            "error": "The new configuration is invalid.",
            "problems": problems,
        },
        HTTPStatus.UNPROCESSABLE_ENTITY,
    )


def alerts_data(daemon: Daemon) -> dict[str, Any]:
    """Build the ``/api/v1/alerts`` data: every pending and firing alert.

    Each alert carries its blast radius: the KPIs its rule reads, the KPIs
    downstream of them along ``drives`` edges, and the key results that track
    any of those KPIs.
    """
    graph = KPIGraph.from_config(daemon.config)
    alerts = []
    for state in [*daemon.evaluator.alerts.values(), *_source_alert_states(daemon)]:
        if state.state not in ACTIVE_STATES:
            continue
        alerts.append(
            {
                "alert": state.alert,
                "group": state.group,
                "fingerprint": state.fingerprint,
                "state": state.state,
                "labels": dict(state.labels),
                "active_at": state.active_at,
                "fired_at": state.fired_at,
                "value": _finite_or_none(state.last_value),
                "blast_radius": blast_radius(
                    daemon.config, daemon.groups, state, graph
                ),
            }
        )
    alerts.sort(key=lambda alert: (alert["state"] != "firing", alert["alert"]))
    return {"alerts": alerts}


def _source_alert_states(daemon: Daemon) -> list[AlertState]:
    """Return the source alerts, each naming the KPIs of its source."""
    kpis_of: dict[str, list[str]] = {}
    for kpi in daemon.config.kpis:
        kpis_of.setdefault(kpi.source, []).append(kpi.name)
    states = []
    for name, state in list(daemon.source_alerts.states.items()):
        extra = {**state.extra, ALERT_KPIS_KEY: sorted(kpis_of.get(name, []))}
        states.append(dataclasses.replace(state, extra=extra))
    return states


def blast_radius(
    config: Config,
    groups: Iterable[RuleGroup],
    state: AlertState,
    graph: KPIGraph | None = None,
) -> dict[str, list[str]]:
    """Return the KPIs and key results that ``state``'s alert puts at risk.

    Parameters
    ----------
    graph : KPIGraph, optional
        The configuration's ``drives`` graph; built from ``config`` when
        left out.

    Returns
    -------
    dict
        ``kpis``: the KPIs the rule reads. ``downstream_kpis``: KPIs reachable
        from those along ``drives`` edges, without the rule's own KPIs.
        ``key_results``: the key results the alert names or that track any
        of these KPIs. Each list is sorted and may be empty.
    """
    graph = graph or KPIGraph.from_config(config)
    rule = _find_rule(groups, state.group, state.alert)
    kpis = _alert_kpis(rule, state)
    key_results: set[str] = set()
    if isinstance(rule, ForecastRule):
        named = state.labels.get("key_result")
        key_results.update([named] if named else rule.key_results)
    for key_result in config.key_results:
        if key_result.name in key_results:
            kpis.add(key_result.kpi)

    downstream = downstream_kpis(config, kpis, graph)
    for kpi in kpis:
        key_results.update(graph.key_results_at_risk(kpi))
    return {
        "kpis": sorted(kpis),
        "downstream_kpis": sorted(downstream),
        "key_results": sorted(key_results),
    }


def _alert_kpis(rule: Rule | None, state: AlertState) -> set[str]:
    recorded = state.extra.get(ALERT_KPIS_KEY)
    if isinstance(recorded, list | tuple):
        return {str(kpi) for kpi in recorded}

    kpis: set[str] = set()
    if rule is None:
        return kpis

    # Threshold rules keep their parsed tree in ``expression``, dependency
    # rules in ``when_expression`` and ``require_expression``, and anomaly
    # rules name their KPI in ``kpi``.
    for name in ("expression", "when_expression", "require_expression"):
        tree = getattr(rule, name, None)
        if tree is not None:
            kpis.update(referenced_kpis(tree))
    kpi = getattr(rule, "kpi", None)
    if isinstance(kpi, str):
        kpis.add(kpi)
    return kpis


def downstream_kpis(
    config: Config, roots: Iterable[str], graph: KPIGraph | None = None
) -> set[str]:
    """Return every KPI reachable from ``roots`` along ``drives`` edges.

    The roots themselves are left out, even when a cycle leads back to them.
    """
    graph = graph or KPIGraph.from_config(config)
    start = set(roots)
    reached = {item.kpi for root in start for item in graph.downstream(root)}
    return reached - start


def _find_rule(groups: Iterable[RuleGroup], group: str, alert: str) -> Rule | None:
    for candidate in groups:
        if candidate.name != group:
            continue
        for rule in candidate.rules:
            if rule.alert == alert:
                return rule
    return None


def rules_data(daemon: Daemon) -> dict[str, Any]:
    """Build the ``/api/v1/rules`` data: rule groups with their last cycle."""
    groups = []
    for group in daemon.groups:
        rules = [_rule_entry(rule) for rule in group.rules]
        report = daemon.evaluator.reports.get(group.name)
        groups.append(
            {
                "name": group.name,
                "interval": format_duration(
                    group.interval or daemon.config.evaluation.interval
                ),
                "rules": rules,
                "last_evaluation": report.evaluated_at if report else None,
                "last_duration_seconds": report.duration_seconds if report else None,
            }
        )
    return {"groups": groups}


def _rule_entry(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "alert": rule.alert,
        "kind": getattr(rule, "kind", "unknown"),
        "for": format_duration(rule.for_),
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
        "location": str(rule.location),
    }
    if isinstance(rule, ThresholdRule):
        entry.update(kind="threshold", expr=rule.expr)
    elif isinstance(rule, ForecastRule):
        entry.update(
            kind="forecast",
            key_results=list(rule.key_results),
            attainment_below=rule.attainment_below,
        )
    for name in ("when", "require", "kpi"):
        value = getattr(rule, name, None)
        if isinstance(value, str):
            entry[name] = value
    return entry


def kpis_data(daemon: Daemon) -> dict[str, Any]:
    """Build the ``/api/v1/kpis`` data: each KPI with its latest series values."""
    series: dict[str, list[dict[str, Any]]] = {}
    for key, times, values in daemon.windows.snapshot():
        if len(times):
            series.setdefault(key.kpi, []).append(
                {
                    "labels": dict(key.labels),
                    "value": _finite_or_none(float(values[-1])),
                    "timestamp": float(times[-1]),
                    "samples_in_window": len(times),
                }
            )
    graph = KPIGraph.from_config(daemon.config)
    kpis = [
        {
            "name": kpi.name,
            "source": kpi.source,
            "help": kpi.help,
            "unit": kpi.unit,
            "downstream_kpis": sorted(
                downstream_kpis(daemon.config, [kpi.name], graph)
            ),
            "series": series.get(kpi.name, []),
        }
        for kpi in daemon.config.kpis
    ]
    return {"kpis": kpis}


def key_results_data(
    daemon: Daemon, points: int = DEFAULT_CHART_POINTS
) -> dict[str, Any]:
    """Build the ``/api/v1/key_results`` data, sorted by risk.

    Parameters
    ----------
    points : int
        Maximum number of points in each key result's downsampled actual
        series.

    Returns
    -------
    dict
        ``key_results``: one entry per evaluated key result, lowest attainment
        probability first and those without a probability last. Each entry
        contains the forecast context (forecast, 80% and 95% bands, probability,
        shortfall, required run rate, decide-by date) and ``chart``, the
        series that the status page draws.
    """
    statuses = list(daemon.key_result_statuses.values())
    # Copy only the windows of KPIs that key results track, not every series.
    windows = {
        key: (times, values)
        for kpi in {status.config.kpi for status in statuses}
        for key, times, values in daemon.windows.snapshot(kpi)
    }
    results = []
    for status in sort_by_risk(statuses):
        entry = dict(status.context())
        entry["unit"] = _kpi_unit(daemon.config, status.config.kpi)
        entry["series_labels"] = (
            None if status.series is None else dict(status.series.labels)
        )
        entry["evaluated_at"] = status.evaluated_at
        times, values = _series_arrays(status, windows)
        entry["chart"] = key_result_chart(status, times, values, points=points)
        results.append(entry)
    return {"key_results": results}


def _series_arrays(status: KeyResultStatus, windows: Mapping[Any, Any]) -> Any:
    if status.series is None or status.series not in windows:
        return (), ()
    return windows[status.series]


def _kpi_unit(config: Config, name: str) -> str:
    for kpi in config.kpis:
        if kpi.name == name:
            return kpi.unit
    return ""


def _key_results(daemon: Daemon, body: Mapping[str, Any]) -> Response:
    query = parse_qs(str(body.get("_query", "")))
    text = query.get("points", [str(DEFAULT_CHART_POINTS)])[-1]
    try:
        points = int(text)
    except ValueError:
        points = 0
    if not 2 <= points <= MAX_CHART_POINTS:
        return Response.error(
            HTTPStatus.BAD_REQUEST,
            f"Query parameter points={text!r} is invalid; use a whole number "
            f"from 2 to {MAX_CHART_POINTS}.",
        )
    return _ok(key_results_data(daemon, points))


def sources_data(daemon: Daemon) -> dict[str, Any]:
    """Build the ``/api/v1/sources`` data: the health of each source."""
    return {"sources": [health.to_dict() for health in daemon.health.values()]}


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _refresh_seconds(daemon: Daemon) -> float:
    interval = daemon.config.evaluation.interval.total_seconds()
    return min(max(interval, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS)


def _status_page(daemon: Daemon) -> Response:
    data = {
        "key_results": key_results_data(daemon)["key_results"],
        "alerts": alerts_data(daemon)["alerts"],
        "sources": sources_data(daemon)["sources"],
        "generated_at": time.time(),
    }
    page = render_status_page(data, refresh_seconds=_refresh_seconds(daemon))
    return Response(
        status=HTTPStatus.OK,
        body=page.encode(),
        content_type="text/html; charset=utf-8",
        headers=PAGE_SECURITY_HEADERS,
    )


def _static_file(body: Mapping[str, Any]) -> Response:
    name = str(body.get("_path", ""))[len(STATIC_PREFIX) :]
    return _static(name)


def _static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if (
        "/" in name
        or "\\" in name
        or name.startswith(".")
        or suffix not in STATIC_TYPES
    ):
        return Response.error(HTTPStatus.NOT_FOUND, f"No static file {name!r}.")

    resource = resources.files("monitor") / "static" / name
    if not resource.is_file():
        return Response.error(HTTPStatus.NOT_FOUND, f"No static file {name!r}.")
    return Response(
        status=HTTPStatus.OK,
        body=resource.read_bytes(),
        content_type=STATIC_TYPES[suffix],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
