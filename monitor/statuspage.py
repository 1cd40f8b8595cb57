"""The status page: chart series of key results and the page's HTML shell.

The page at ``/`` is rendered from ``monitor/templates/status.html`` with the
same data the JSON API returns, embedded as JSON. ``monitor/static/status.js``
draws one card with an SVG chart per key result from that data and then
fetches the API again every few seconds, so the page refreshes without a
full reload. Without JavaScript the page still shows a plain table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
from markupsafe import Markup

if TYPE_CHECKING:
    from monitor.keyresults import KeyResultStatus

DEFAULT_CHART_POINTS = 200
MAX_CHART_POINTS = 2000

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("monitor", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _utc_time(timestamp: float | None) -> str:
    """Format epoch seconds as a UTC time for the page without JavaScript."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(float(timestamp), UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_ENVIRONMENT.filters["utc_time"] = _utc_time


def sort_by_risk(statuses: Iterable[KeyResultStatus]) -> list[KeyResultStatus]:
    """Return key results with the lowest attainment probability first.

    Key results without a probability (``insufficient_data``) come last, and
    ties keep a stable order by name.
    """

    def risk(status: KeyResultStatus) -> tuple[int, float, str]:
        probability = status.attainment_probability
        if probability is None or not math.isfinite(probability):
            return (1, 0.0, status.name)
        return (0, probability, status.name)

    return sorted(statuses, key=risk)


def key_result_chart(
    status: KeyResultStatus,
    timestamps: Any,
    values: Any,
    *,
    points: int = DEFAULT_CHART_POINTS,
) -> dict[str, Any]:
    """Build the series that the status page draws for one key result.

    Parameters
    ----------
    status : KeyResultStatus
        The key result's latest evaluation.
    timestamps, values : array-like
        The window of the key result's series, in epoch seconds and KPI units.
    points : int
        Maximum number of points of the downsampled actual series.

    Returns
    -------
    dict
        Times are epoch seconds. ``actual``: ``[time, value]`` pairs from the
        period start to the evaluation, the running sum for a ``cumulative``
        key result. ``glide_path``: the linear path from the baseline at the
        start to the target at the due date. ``expected_now``: the glide
        path's point at the evaluation time. ``forecast_path``: from the
        current value now to the median forecast at the due date, empty
        without a forecast. ``band_80`` and ``band_95``: ``[lower, upper]``
        of the prediction interval at the due date, or None.
    """
    start = status.start.timestamp()
    due = status.due.timestamp()
    now = status.evaluated_at
    forecast = status.forecast
    config = status.config
    actual = _period_series(
        timestamps, values, start, min(now, due), config.measure, points
    )

    span = config.target - config.baseline
    expected = forecast.expected_progress
    expected_now = None
    if _finite(expected) and start <= now <= due:
        expected_now = [now, config.baseline + expected * span]

    forecast_path: list[list[float]] = []
    if _finite(forecast.current) and _finite(forecast.forecast) and now < due:
        forecast_path = [[now, forecast.current], [due, forecast.forecast]]
    return {
        "start": start,
        "due": due,
        "evaluated_at": now,
        "actual": actual,
        "glide_path": [[start, config.baseline], [due, config.target]],
        "expected_now": expected_now,
        "target": config.target,
        "forecast_path": forecast_path,
        "band_80": _band(forecast.lower_80, forecast.upper_80),
        "band_95": _band(forecast.lower_95, forecast.upper_95),
    }


def _period_series(
    timestamps: Any,
    values: Any,
    start: float,
    end: float,
    measure: str,
    points: int,
) -> list[list[float]]:
    times = np.asarray(timestamps, dtype=float).ravel()
    data = np.asarray(values, dtype=float).ravel()
    if times.size != data.size or times.size == 0:
        return []

    keep = np.isfinite(times) & np.isfinite(data) & (times >= start) & (times <= end)
    times, data = times[keep], data[keep]
    order = np.argsort(times, kind="stable")
    times, data = times[order], data[order]
    if measure == "cumulative":
        data = np.cumsum(data)
    times, data = downsample(times, data, points, keep_last=measure == "cumulative")
    return [[float(t), float(v)] for t, v in zip(times, data, strict=True)]


def downsample(
    times: np.ndarray, values: np.ndarray, points: int, *, keep_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a sorted series to at most ``points`` points.

    The samples are split into ``points - 1`` runs of about equal length.
    With ``keep_last`` each run is represented by its last sample, which is
    exact for a running sum. Otherwise each run becomes its mean time and
    mean value, which smooths noise the chart could not show anyway. The
    final sample is always kept as it is, so the series ends at the value
    the forecast starts from.
    """
    if times.size <= points:
        return times, values

    edges = np.linspace(0, times.size - 1, points, dtype=int)
    if keep_last:
        chosen = np.unique(edges[1:])
        return times[chosen], values[chosen]

    bounds = np.unique(edges[:-1])
    counts = np.diff(np.append(bounds, times.size - 1))
    mean_times = np.add.reduceat(times[:-1], bounds) / counts
    mean_values = np.add.reduceat(values[:-1], bounds) / counts
    return (
        np.append(mean_times, times[-1]),
        np.append(mean_values, values[-1]),
    )


def _band(lower: float, upper: float) -> list[float] | None:
    if _finite(lower) and _finite(upper):
        return [float(lower), float(upper)]
    return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def embed_json(data: Any) -> str:
    """Serialise ``data`` for a ``<script type="application/json">`` element.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no value can close
    the element or open a comment; the browser's JSON parser reads them back
    unchanged.
    """
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_status_page(data: Mapping[str, Any], *, refresh_seconds: float) -> str:
    """Render the status page for ``data``.

    Parameters
    ----------
    data : mapping
        ``key_results`` (sorted by risk), ``alerts``, ``sources`` as the API
        returns them, and ``generated_at`` in epoch seconds.
    refresh_seconds : float
        How often the page fetches the API again.
    """
    template = _ENVIRONMENT.get_template("status.html")
    return template.render(
        data=data,
        initial_json=Markup(embed_json(data)),
        refresh_seconds=f"{refresh_seconds:g}",
    )
