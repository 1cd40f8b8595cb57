"""A plain HTML status page: key results sorted by risk, alerts, sources."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.daemon import Daemon


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}g}"


def render_status_page(daemon: Daemon) -> str:
    """Render the page; every value is escaped."""
    statuses = sorted(
        daemon.key_result_statuses.values(),
        key=lambda s: (
            s.attainment_probability if math.isfinite(s.attainment_probability) else 2.0
        ),
    )
    rows = []
    for status in statuses:
        f = status.forecast
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    status.config.objective,
                    status.name,
                    status.config.owner,
                    f.status,
                    _number(f.attainment_probability, 2),
                    _number(f.current),
                    _number(f.forecast),
                    f"{_number(f.lower_80)} – {_number(f.upper_80)}",
                    _number(status.config.target),
                    status.due.date().isoformat(),
                )
            )
            + "</tr>"
        )
    alerts = [
        f"<li>{html.escape(a.state)}: {html.escape(a.alert)} "
        f"{html.escape(str(dict(a.labels)))}</li>"
        for a in daemon.evaluator.alerts.values()
    ]
    sources = [
        f"<li>{html.escape(h.name)}: {'up' if h.up else 'failing'}"
        f"{' – ' + html.escape(h.last_error or '') if not h.up else ''}</li>"
        for h in daemon.health.values()
    ]
    header = (
        "<tr><th>Objective</th><th>Key result</th><th>Owner</th><th>Status</th>"
        "<th>P(attain)</th><th>Current</th><th>Forecast</th><th>80% band</th>"
        "<th>Target</th><th>Due</th></tr>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>krwatch</title></head><body><h1>krwatch</h1>"
        f"<h2>Key results</h2><table>{header}{''.join(rows)}</table>"
        f"<h2>Alerts</h2><ul>{''.join(alerts) or '<li>none</li>'}</ul>"
        f"<h2>Sources</h2><ul>{''.join(sources)}</ul></body></html>"
    )
