"""Tests of the backtest: a live-style run and a replay fire the same alerts."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.evaluation import RuleEvaluator
from monitor.keyresults import KeyResultEvaluator, KeyResultStatus
from monitor.sources.base import SourceContext
from monitor.sources.csv import CsvSource
from monitor.store import Store
from monitor.windows import WindowStore
from rules.backtest import load_samples, run_backtest, summarize
from rules.loader import load_rule_files

START = datetime(2025, 1, 6, tzinfo=UTC).timestamp()
HOURS = 12
STEP_SECONDS = 600.0


def write_setup(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    times = START - 86400 + np.arange(0, (HOURS + 24) * 3600, STEP_SECONDS)
    values = 100 + rng.normal(0, 5, len(times))
    dips = (times > START + 3 * 3600) & (times < START + 5 * 3600)
    values[dips] = 40
    values[(times > START + 8 * 3600) & (times < START + 8.4 * 3600)] = 45
    rows = [
        f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S},{v:.3f}"
        for t, v in zip(times, values, strict=True)
    ]
    (tmp_path / "orders.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (tmp_path / "rules.yaml").write_text(
        textwrap.dedent(
            """\
            groups:
              - name: shop
                interval: 5m
                rules:
                  - alert: OrdersLow
                    expr: kpi("orders") < 60
                    for: 20m
                  - alert: OrdersBelowAverage
                    expr: kpi("orders") < avg_over(kpi("orders"), 6h) * 0.8
                  - alert: WeekMiss
                    key_results: [orders_week]
                    attainment_below: 0.5
            """
        )
    )
    config = tmp_path / "krwatch.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            storage: {path: store.db}
            evaluation: {interval: 10m}
            sources:
              - {name: shop, type: csv, interval: 10m, path: orders.csv,
                 timestamp_format: "%Y-%m-%d %H:%M:%S"}
            kpis:
              - {name: orders, source: shop, stale_after: 1h}
            objectives:
              - name: sell
                owner: sales
                key_results:
                  - {name: orders_week, kpi: orders, measure: cumulative,
                     direction: increase, baseline: 0, target: 110000,
                     period: week}
            rule_files: [rules.yaml]
            """
        )
    )
    return config


def live_events(config_path: Path) -> list[tuple[str, str, float]]:
    """Run the evaluator as the daemon does: poll, then evaluate, per tick."""
    config = load_config(config_path)
    groups = load_rule_files(config)
    store = Store(config.path.parent / "live.db")
    windows = WindowStore(config.storage.window.total_seconds())
    statuses: dict[str, KeyResultStatus] = {}
    events: list[tuple[str, str, float]] = []
    now = [START]

    def enqueue(connection: object, notification: object) -> None:
        events.append((notification.alert, notification.state, now[0]))  # type: ignore[attr-defined]

    evaluator = RuleEvaluator(config, store, windows, lambda: statuses, enqueue)
    evaluator.apply_rules(groups, now=START)
    key_results = KeyResultEvaluator(config.key_results, windows)
    context = SourceContext(
        config=config,
        session=None,  # type: ignore[arg-type]
        meta_get=store.meta_get,
        meta_set=store.meta_set,
    )
    source = CsvSource(config.sources[0], list(config.kpis), context)
    for tick in np.arange(START, START + HOURS * 3600 + 1, 300.0):
        now[0] = float(tick)
        if (tick - START) % 600 == 0:
            windows.add_samples(source.poll(float(tick)).samples)
            statuses = key_results.evaluate(float(tick))
        evaluator.evaluate_group(groups[0], now=float(tick))
    store.close()
    return events


def test_backtest_matches_live_run(tmp_path: Path) -> None:
    config_path = write_setup(tmp_path)
    live = live_events(config_path)
    config = load_config(config_path)
    groups = load_rule_files(config)
    end = START + HOURS * 3600
    samples = load_samples(config, "csv", START - 86400 * 90, end)
    replay = run_backtest(config, groups, samples, start=START, end=end)
    replayed = [
        (n.alert, n.state, (n.resolved_at or n.fired_at).timestamp())  # type: ignore[union-attr]
        for n in replay.notifications
    ]
    replay.close()
    assert {alert for alert, _, _ in live} >= {"OrdersLow", "OrdersBelowAverage"}
    assert replayed == live


def test_backtest_summary_counts_flaps(tmp_path: Path) -> None:
    config_path = write_setup(tmp_path)
    config = load_config(config_path)
    groups = load_rule_files(config)
    end = START + HOURS * 3600
    samples = load_samples(config, "csv", START - 86400, end)
    replay = run_backtest(config, groups, samples, start=START, end=end)
    summaries = {s.alert: s for s in summarize(replay.timelines.values(), groups, end)}
    replay.close()
    low = summaries["OrdersLow"]
    assert low.alerts == 1
    assert low.firing_episodes == 1
    assert low.flaps == 0
    below = summaries["OrdersBelowAverage"]
    assert below.firing_episodes == 2
    assert below.flaps == 1


def test_cli_backtest_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_setup(tmp_path)
    status = main(
        [
            "backtest",
            "-c",
            str(config_path),
            "--from",
            "2025-01-06T00:00:00Z",
            "--to",
            "2025-01-06T12:00:00Z",
            "--data",
            "csv",
            "--format",
            "json",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["from"] == "2025-01-06T00:00:00Z"
    low = [a for a in report["alerts"] if a["alert"] == "OrdersLow"]
    assert len(low) == 1
    assert low[0]["episodes"][0]["fired_at"] is not None
    names = [item["alert"] for item in report["summary"]]
    assert names == ["OrdersLow", "OrdersBelowAverage", "WeekMiss"]


def test_cli_backtest_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_setup(tmp_path)
    args = [
        "backtest",
        "-c",
        str(config_path),
        "--from",
        "2025-01-06",
        "--to",
        "2025-01-07",
    ]
    assert main(args) == 1
    assert (
        "does not exist; run krwatch to collect history first"
        in capsys.readouterr().err
    )


def backtest_json(
    config_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> dict[str, object]:
    args = ["backtest", "-c", str(config_path), "--data", "csv", "--format", "json"]
    times = ["--from", "2025-01-06T00:00:00Z", "--to", "2025-01-06T12:00:00Z"]
    assert main([*args, *times, *extra]) == 0
    report: dict[str, object] = json.loads(capsys.readouterr().out)
    return report


def episode_of(report: dict[str, object], alert: str) -> dict[str, str]:
    alerts = [item for item in report["alerts"] if item["alert"] == alert]  # type: ignore[attr-defined]
    assert len(alerts) == 1
    episode: dict[str, str] = alerts[0]["episodes"][0]
    return episode


def test_cli_backtest_interval_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_setup(tmp_path)

    configured = episode_of(backtest_json(config_path, capsys), "OrdersLow")
    coarse = episode_of(
        backtest_json(config_path, capsys, "--interval", "15m"), "OrdersLow"
    )

    assert configured["active_at"] == "2025-01-06T03:10:00Z"
    assert configured["fired_at"] == "2025-01-06T03:30:00Z"
    assert coarse["active_at"] == "2025-01-06T03:15:00Z"
    assert coarse["fired_at"] == "2025-01-06T03:45:00Z"


@pytest.mark.parametrize("interval", ["0s", "5 minutes"], ids=["zero", "prose"])
def test_cli_backtest_invalid_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], interval: str
) -> None:
    config_path = write_setup(tmp_path)
    args = ["backtest", "-c", str(config_path), "--interval", interval]

    with pytest.raises(SystemExit) as raised:
        main([*args, "--from", "2025-01-06", "--to", "2025-01-07"])

    assert raised.value.code == 2
    assert "--interval" in capsys.readouterr().err


def test_cli_backtest_without_samples_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_setup(tmp_path)
    args = ["backtest", "-c", str(config_path), "--data", "csv"]

    code = main([*args, "--from", "2031-01-01", "--to", "2031-01-02"])

    assert code == 1
    assert "no samples of 'csv' between 2030-10-03T00:00:00Z and " in (
        capsys.readouterr().err
    )
