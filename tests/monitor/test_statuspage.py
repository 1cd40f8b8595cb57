"""Chart series, downsampling, risk order and HTML of the status page."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from detectors.keyresults import KeyResultForecast
from monitor.config.model import KeyResultConfig
from monitor.keyresults import KeyResultStatus
from monitor.statuspage import (
    downsample,
    embed_json,
    key_result_chart,
    render_status_page,
    sort_by_risk,
)

START = datetime(2026, 3, 2, tzinfo=UTC)
DUE = START + timedelta(days=7)
HOUR_SECONDS = 3600.0


def make_status(
    name: str = "orders_total",
    *,
    measure: str = "cumulative",
    probability: float = 0.3,
    now: float | None = None,
    current: float = 500.0,
) -> KeyResultStatus:
    evaluated_at = START.timestamp() + 3 * 24 * HOUR_SECONDS if now is None else now
    config = KeyResultConfig(
        name=name,
        kpi="orders",
        objective="grow",
        owner="sales",
        measure=measure,  # type: ignore[arg-type]
        direction="increase",
        baseline=0.0,
        target=2000.0,
        start=START,
        due=DUE,
    )
    forecast = KeyResultForecast(
        status="off_track" if math.isfinite(probability) else "insufficient_data",
        current=current,
        progress=current / 2000.0,
        expected_progress=3 / 7,
        forecast=1200.0,
        lower_80=1000.0,
        upper_80=1400.0,
        lower_95=900.0,
        upper_95=1500.0,
        attainment_probability=probability,
        shortfall=800.0,
        required_run_rate=375.0,
        decide_by=None,
        reason="Used a test forecast.",
    )
    return KeyResultStatus(
        config=config,
        series=None,
        start=START,
        due=DUE,
        evaluated_at=evaluated_at,
        forecast=forecast,
    )


def hourly(hours: int, value: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    times = START.timestamp() + HOUR_SECONDS * np.arange(hours, dtype=float)
    return times, np.full(hours, value)


def test_key_result_chart_cumulative_running_sum() -> None:
    status = make_status()
    times, values = hourly(24 * 3)
    before = np.array([START.timestamp() - HOUR_SECONDS])
    chart = key_result_chart(
        status,
        np.concatenate([before, times]),
        np.concatenate([[1000.0], values]),
        points=1000,
    )
    actual = chart["actual"]
    assert len(actual) == 24 * 3
    assert actual[0] == [START.timestamp(), 5.0]
    assert actual[-1][1] == 5.0 * 24 * 3


def test_key_result_chart_level_keeps_values() -> None:
    status = make_status(measure="level")
    times, values = hourly(10, value=7.0)
    chart = key_result_chart(status, times, values)
    assert [value for _, value in chart["actual"]] == [7.0] * 10


def test_key_result_chart_drops_samples_after_now() -> None:
    now = START.timestamp() + 5 * HOUR_SECONDS
    status = make_status(now=now)
    times, values = hourly(10)
    chart = key_result_chart(status, times, values)
    assert chart["actual"][-1][0] == now
    assert len(chart["actual"]) == 6


def test_key_result_chart_forecast_and_bands() -> None:
    status = make_status()
    chart = key_result_chart(status, [], [])
    now = status.evaluated_at
    assert chart["actual"] == []
    assert chart["glide_path"] == [[START.timestamp(), 0.0], [DUE.timestamp(), 2000.0]]
    assert chart["forecast_path"] == [[now, 500.0], [DUE.timestamp(), 1200.0]]
    assert chart["band_80"] == [1000.0, 1400.0]
    assert chart["band_95"] == [900.0, 1500.0]
    assert chart["expected_now"] == [now, pytest.approx(2000.0 * 3 / 7)]
    assert chart["target"] == 2000.0


def test_key_result_chart_without_forecast() -> None:
    status = make_status(probability=math.nan, current=math.nan)
    chart = key_result_chart(status, [], [])
    assert chart["forecast_path"] == []
    json.dumps(chart, allow_nan=False)


@pytest.mark.parametrize("keep_last", [True, False], ids=["running-sum", "mean"])
def test_downsample_bounds_point_count(keep_last: bool) -> None:
    times = np.arange(1000, dtype=float)
    values = np.cumsum(np.ones(1000))
    reduced_times, reduced_values = downsample(times, values, 50, keep_last=keep_last)
    assert len(reduced_times) <= 50
    assert len(reduced_times) >= 45
    assert reduced_times[-1] == 999.0
    assert reduced_values[-1] == 1000.0
    assert np.all(np.diff(reduced_times) > 0)


def test_downsample_running_sum_exact() -> None:
    times = np.arange(100, dtype=float)
    values = np.cumsum(np.arange(100, dtype=float))
    reduced_times, reduced_values = downsample(times, values, 10, keep_last=True)
    indices = reduced_times.astype(int)
    assert np.array_equal(reduced_values, values[indices])


def test_downsample_mean_averages_runs() -> None:
    times = np.arange(9, dtype=float)
    values = np.array([0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 4.0])
    reduced_times, reduced_values = downsample(times, values, 5, keep_last=False)
    assert list(reduced_values) == [5.0, 5.0, 5.0, 5.0, 4.0]
    assert list(reduced_times) == [0.5, 2.5, 4.5, 6.5, 8.0]


def test_downsample_short_series_unchanged() -> None:
    times = np.arange(5, dtype=float)
    reduced_times, _ = downsample(times, times, 10, keep_last=False)
    assert reduced_times is times


def test_sort_by_risk_lowest_probability_first() -> None:
    statuses = [
        make_status("safe", probability=0.9),
        make_status("unknown", probability=math.nan),
        make_status("doomed", probability=0.05),
        make_status("middle", probability=0.5),
        make_status("also_doomed", probability=0.05),
    ]
    order = [status.name for status in sort_by_risk(statuses)]
    assert order == ["also_doomed", "doomed", "middle", "safe", "unknown"]


def test_embed_json_cannot_close_script() -> None:
    text = embed_json({"name": "</script><script>alert(1)</script>", "and": "&<!--"})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script>"


def page_data(name: str) -> dict[str, Any]:
    return {
        "key_results": [
            {
                "name": name,
                "owner": "<b>owner</b>",
                "status": "off_track",
                "attainment_probability": 0.25,
                "forecast": 1200.0,
                "target": 2000.0,
                "due": "2026-03-09T00:00:00+00:00",
            }
        ],
        "alerts": [],
        "sources": [],
        "generated_at": 1.0,
    }


def test_render_status_page_escapes_values() -> None:
    hostile = "</script><img src=x onerror=alert(1)>"
    page = render_status_page(page_data(hostile), refresh_seconds=15)
    assert hostile not in page
    assert "<b>owner</b>" not in page
    assert "&lt;b&gt;owner&lt;/b&gt;" in page
    assert "<td>25%</td>" in page


def test_render_status_page_embeds_data() -> None:
    page = render_status_page(page_data("orders_total"), refresh_seconds=7.5)
    match = re.search(
        r'<script type="application/json" id="initial-data">(.*?)</script>', page
    )
    assert match is not None
    assert json.loads(match.group(1)) == page_data("orders_total")
    assert 'data-refresh-seconds="7.5"' in page
    assert "No alerts are firing or pending." in page


def test_render_status_page_formats_times_without_script() -> None:
    data = page_data("orders_total")
    data["sources"] = [
        {
            "name": "erp",
            "type": "sql",
            "up": True,
            "last_success": 1_700_000_000.5,
            "polls": 3,
            "last_error": None,
        }
    ]
    page = render_status_page(data, refresh_seconds=15)
    assert "<td>2023-11-14 22:13:20 UTC</td>" in page
    assert "1700000000.5" not in page.split('id="initial-data"')[0]
