"""HTTP API handlers: health, reload and the read-only /api/v1 endpoints."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from monitor.durations import format_duration
from monitor.server import Response, Routes
from rules.model import ForecastRule, ThresholdRule

if TYPE_CHECKING:
    from monitor.daemon import Daemon


def build_routes(daemon: Daemon) -> Routes:
    """Return the routes of ``daemon``'s HTTP server."""

    def token() -> str | None:
        secret = daemon.config.server.api_token
        return None if secret is None else secret.reveal()

    routes = Routes(daemon.registry, token)
    routes.add("GET", "/-/healthy", lambda _: Response.json({"status": "healthy"}))
    routes.add("GET", "/-/ready", lambda _: _ready(daemon))
    routes.add("POST", "/-/reload", lambda _: _reload(daemon), protected=True)
    routes.add("GET", "/api/v1/alerts", lambda _: _alerts(daemon))
    routes.add("GET", "/api/v1/rules", lambda _: _rules(daemon))
    routes.add("GET", "/api/v1/kpis", lambda _: _kpis(daemon))
    routes.add("GET", "/api/v1/key_results", lambda _: _key_results(daemon))
    routes.add("GET", "/api/v1/sources", lambda _: _sources(daemon))
    routes.add("GET", "/", lambda _: _status_page(daemon))
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


def _alerts(daemon: Daemon) -> Response:
    alerts = [
        {
            "alert": state.alert,
            "group": state.group,
            "fingerprint": state.fingerprint,
            "state": state.state,
            "labels": dict(state.labels),
            "active_at": state.active_at,
            "fired_at": state.fired_at,
            "value": state.last_value,
        }
        for state in list(daemon.evaluator.alerts.values())
    ]
    return _ok({"alerts": alerts})


def _rules(daemon: Daemon) -> Response:
    groups = []
    for group in daemon.groups:
        rules = []
        for rule in group.rules:
            entry: dict[str, Any] = {
                "alert": rule.alert,
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
            rules.append(entry)
        report = daemon.evaluator.reports.get(group.name)
        groups.append(
            {
                "name": group.name,
                "rules": rules,
                "last_evaluation": report.evaluated_at if report else None,
                "last_duration_seconds": report.duration_seconds if report else None,
            }
        )
    return _ok({"groups": groups})


def _kpis(daemon: Daemon) -> Response:
    series: dict[str, list[dict[str, Any]]] = {}
    for key, times, values in daemon.windows.snapshot():
        if len(times):
            series.setdefault(key.kpi, []).append(
                {
                    "labels": dict(key.labels),
                    "value": float(values[-1]),
                    "timestamp": float(times[-1]),
                    "samples_in_window": len(times),
                }
            )
    kpis = [
        {
            "name": kpi.name,
            "source": kpi.source,
            "help": kpi.help,
            "unit": kpi.unit,
            "series": series.get(kpi.name, []),
        }
        for kpi in daemon.config.kpis
    ]
    return _ok({"kpis": kpis})


def _key_results(daemon: Daemon) -> Response:
    statuses = daemon.key_result_statuses
    results = [status.context() for status in statuses.values()]
    return _ok({"key_results": results})


def _sources(daemon: Daemon) -> Response:
    return _ok({"sources": [h.to_dict() for h in daemon.health.values()]})


def _status_page(daemon: Daemon) -> Response:
    from monitor.statuspage import render_status_page

    return Response(
        status=HTTPStatus.OK,
        body=render_status_page(daemon).encode(),
        content_type="text/html; charset=utf-8",
    )
