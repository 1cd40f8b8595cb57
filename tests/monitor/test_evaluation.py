"""Tests of the evaluation cycle over the four rule kinds."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from detectors._robust_z import RobustZDetector
from exporters.notification import Notification
from monitor.config import Config, load_config
from monitor.evaluation import RuleEvaluator
from monitor.keyresults import KeyResultStatus
from monitor.series import SeriesKey, make_labels
from monitor.store import Store
from monitor.windows import WindowStore
from rules.lifecycle import FIRING, PENDING
from rules.loader import load_rule_file
from rules.model import RuleGroup

STALE_SECONDS = 300.0
"""``stale_after`` of every KPI in the test config."""

START = 1_700_000_000.0

CONFIG = """\
sources:
  - name: shop
    type: csv
    path: orders.csv
kpis:
  - {name: orders, source: shop, stale_after: 5m, query: {value_column: value}}
  - {name: capacity, source: shop, stale_after: 5m, query: {value_column: value}}
  - {name: signups, source: shop, stale_after: 5m, query: {value_column: value}}
objectives:
  - name: grow
    owner: sales
    key_results:
      - name: more_orders
        kpi: orders
        measure: level
        direction: increase
        baseline: 100
        target: 150
        period: quarter
receivers:
  - name: ops
    type: log
route:
  receiver: ops
"""


@dataclass
class Engine:
    """An evaluator over a real store and windows, with recorded notifications."""

    folder: Path
    config: Config
    store: Store
    windows: WindowStore
    statuses: dict[str, KeyResultStatus] = field(default_factory=dict)
    sent: list[Notification] = field(default_factory=list)
    evaluator: RuleEvaluator = field(init=False)

    def __post_init__(self) -> None:
        self.evaluator = self.new_evaluator()

    def new_evaluator(self) -> RuleEvaluator:
        """Return an evaluator that restores its state from the store."""

        def enqueue(connection: object, notification: Notification) -> None:
            self.sent.append(notification)

        return RuleEvaluator(
            self.config,
            self.store,
            self.windows,
            key_results=lambda: self.statuses,
            enqueue=enqueue,
        )

    def rules(self, text: str, name: str = "rules.yaml") -> RuleGroup:
        path = self.folder / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        (group,) = load_rule_file(
            path, kpis=["orders", "capacity", "signups"], key_results=["more_orders"]
        )
        return group

    def add(
        self, kpi: str, labels: Mapping[str, str], *points: tuple[float, float]
    ) -> None:
        key = SeriesKey(kpi, make_labels(labels))
        times = np.array([START + offset for offset, _ in points])
        values = np.array([value for _, value in points])
        self.windows.add_arrays(key, times, values)

    def run(self, group: RuleGroup, offset: float) -> None:
        self.evaluator.evaluate_group(group, now=START + offset)

    def states(self) -> dict[tuple[str, str], str]:
        """Return the alert states by alert name and region."""
        return {
            (state.alert, state.labels.get("region", "")): state.state
            for state in self.evaluator.alerts.values()
        }

    def transitions(self) -> list[tuple[str, str, str]]:
        return [(n.alert, n.labels.get("region", ""), n.state) for n in self.sent]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "orders.csv").write_text("timestamp,value\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(CONFIG, encoding="utf-8")
    store = Store(tmp_path / "krwatch.db")
    try:
        yield Engine(
            folder=tmp_path,
            config=load_config(config_path),
            store=store,
            windows=WindowStore(30 * 86_400.0),
        )
    finally:
        store.close()


THRESHOLD = """
groups:
  - name: shop
    rules:
      - alert: OrdersHigh
        expr: kpi("orders") > 100
        no_data: {no_data}
"""


def test_evaluate_threshold_stale_series_keeps_firing(engine: Engine) -> None:
    group = engine.rules(THRESHOLD.format(no_data="keep_state"))
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.add("orders", {"region": "us"}, (0, 150))
    engine.run(group, 10)
    # eu drops below the limit; us stops reporting and goes stale.
    engine.add("orders", {"region": "eu"}, (400, 50))
    engine.run(group, 410)

    assert engine.states() == {("OrdersHigh", "us"): FIRING}
    assert engine.transitions() == [
        ("OrdersHigh", "eu", "firing"),
        ("OrdersHigh", "us", "firing"),
        ("OrdersHigh", "eu", "resolved"),
    ]


def test_evaluate_threshold_stale_series_ok_resolves(engine: Engine) -> None:
    group = engine.rules(THRESHOLD.format(no_data="ok"))
    engine.add("orders", {"region": "us"}, (0, 150))
    engine.add("orders", {"region": "eu"}, (0, 150), (400, 150))
    engine.run(group, 10)
    engine.run(group, 410)

    assert engine.states() == {("OrdersHigh", "eu"): FIRING}
    assert engine.transitions()[-1] == ("OrdersHigh", "us", "resolved")


def test_evaluate_threshold_no_series_alerting_fires(engine: Engine) -> None:
    group = engine.rules(THRESHOLD.format(no_data="alerting"))
    engine.run(group, 10)

    (state,) = engine.evaluator.alerts.values()
    assert state.state == FIRING
    assert dict(state.labels) == {"alertname": "OrdersHigh"}
    # Fresh data that is below the limit clears the stand-in alert.
    engine.add("orders", {"region": "eu"}, (15, 50))
    engine.run(group, 20)
    assert engine.states() == {}
    assert engine.transitions()[-1] == ("OrdersHigh", "", "resolved")


ABSENCE = """
groups:
  - name: shop
    rules:
      - alert: OrdersSilent
        expr: {expr}
"""


def test_evaluate_stale_rule_fires_and_resolves(engine: Engine) -> None:
    group = engine.rules(ABSENCE.format(expr='stale(kpi("orders"), 10m)'))
    engine.add("orders", {"region": "us"}, (0, 150))
    engine.run(group, 10)
    engine.run(group, 1200)
    assert engine.transitions() == [("OrdersSilent", "us", "firing")]

    engine.add("orders", {"region": "us"}, (1300, 150))
    engine.run(group, 1310)

    assert engine.transitions()[-1] == ("OrdersSilent", "us", "resolved")
    assert engine.states() == {}


def test_evaluate_absent_rule_fires_and_resolves(engine: Engine) -> None:
    group = engine.rules(ABSENCE.format(expr='absent(kpi("orders", region="us"))'))
    # A stale series of the KPI must not turn the absence into no data.
    engine.add("orders", {"region": "apac"}, (0, 150))
    engine.add("orders", {"region": "eu"}, (0, 150), (390, 150))
    engine.run(group, 400)
    assert engine.transitions() == [("OrdersSilent", "us", "firing")]

    engine.add("orders", {"region": "us"}, (405, 150))
    engine.run(group, 410)

    assert engine.transitions()[-1] == ("OrdersSilent", "us", "resolved")
    assert engine.states() == {}


def test_evaluate_ratio_with_stale_side_no_data(engine: Engine) -> None:
    group = engine.rules(
        """
        groups:
          - name: shop
            rules:
              - alert: OrdersTilted
                expr: kpi("orders", region="eu") / on() kpi("orders", region="us") > 1
                no_data: ok
        """
    )
    engine.add("orders", {"region": "us"}, (0, 100))
    engine.add("orders", {"region": "eu"}, (0, 150), (400, 150))
    engine.run(group, 10)
    assert engine.states() == {("OrdersTilted", ""): FIRING}

    engine.run(group, 410)

    assert engine.states() == {}
    assert engine.transitions()[-1] == ("OrdersTilted", "", "resolved")


@pytest.mark.parametrize(
    ("on_error", "expected"),
    [("keep_state", PENDING), ("alerting", FIRING)],
    ids=["keep-state-stays-pending", "alerting-fires"],
)
def test_evaluate_threshold_error_policy(
    engine: Engine, on_error: str, expected: str
) -> None:
    group = engine.rules(
        f"""
        groups:
          - name: shop
            rules:
              - alert: Ratio
                expr: kpi("orders") / on() kpi("capacity") > 1
                for: 1m
                on_error: {on_error}
        """
    )
    engine.add("orders", {}, (0, 10))
    engine.add("capacity", {"region": "eu"}, (0, 1))
    engine.run(group, 10)
    # A second capacity series breaks the one-to-one match: an error.
    engine.add("capacity", {"region": "us"}, (20, 1))
    report = engine.evaluator.evaluate_group(group, now=START + 90)

    assert report.failed_rules == 1
    assert engine.states() == {("Ratio", ""): expected}


def test_evaluate_error_keeps_firing_alert(engine: Engine) -> None:
    group = engine.rules(
        """
        groups:
          - name: shop
            rules:
              - alert: Ratio
                expr: kpi("orders") / on() kpi("capacity") > 1
        """
    )
    engine.add("orders", {}, (0, 10))
    engine.add("capacity", {"region": "eu"}, (0, 1))
    engine.run(group, 10)
    assert engine.states() == {("Ratio", ""): FIRING}

    engine.add("capacity", {"region": "us"}, (20, 1))
    engine.run(group, 30)

    assert engine.states() == {("Ratio", ""): FIRING}
    assert engine.transitions() == [("Ratio", "", "firing")]


DEPENDENCY = """
groups:
  - name: shop
    rules:
      - alert: OrdersOutpaceCapacity
        when: kpi("orders") > 100
        require: kpi("capacity") >= 80
        lag: 10m
        match_on: [region]
"""


def test_evaluate_dependency_fires_after_lag(engine: Engine) -> None:
    group = engine.rules(DEPENDENCY)
    engine.add("orders", {"region": "eu", "channel": "web"}, (0, 150))
    engine.add("capacity", {"region": "eu"}, (0, 50))
    engine.run(group, 10)
    assert engine.states() == {}

    engine.add("orders", {"region": "eu", "channel": "web"}, (600, 150))
    engine.add("capacity", {"region": "eu"}, (600, 50))
    engine.run(group, 605)
    assert engine.states() == {}

    engine.run(group, 615)
    assert engine.states() == {("OrdersOutpaceCapacity", "eu"): FIRING}

    # The requirement catches up: the alert resolves.
    engine.add("capacity", {"region": "eu"}, (620, 90))
    engine.run(group, 625)
    assert engine.states() == {}
    assert [t[2] for t in engine.transitions()] == ["firing", "resolved"]


def test_evaluate_dependency_met_within_lag(engine: Engine) -> None:
    group = engine.rules(DEPENDENCY)
    engine.add("orders", {"region": "eu"}, (0, 150), (300, 150), (700, 150))
    engine.add("capacity", {"region": "eu"}, (0, 50), (300, 90), (700, 90))
    for offset in (10, 310, 710):
        engine.run(group, offset)

    assert engine.states() == {}
    assert engine.sent == []


def test_evaluate_dependency_other_region_unmatched(engine: Engine) -> None:
    group = engine.rules(DEPENDENCY)
    engine.add("orders", {"region": "eu"}, (0, 150), (700, 150))
    engine.add("orders", {"region": "us"}, (0, 150), (700, 150))
    engine.add("capacity", {"region": "eu"}, (0, 50), (700, 50))
    engine.add("capacity", {"region": "us"}, (0, 90), (700, 90))
    engine.run(group, 10)
    engine.run(group, 710)

    assert engine.states() == {("OrdersOutpaceCapacity", "eu"): FIRING}


def test_evaluate_dependency_stale_requirement_no_data(engine: Engine) -> None:
    group = engine.rules(DEPENDENCY)
    engine.add("orders", {"region": "eu"}, (0, 150), (700, 150))
    engine.add("capacity", {"region": "eu"}, (0, 50))
    engine.run(group, 10)
    engine.run(group, 710)

    assert engine.states() == {}


def test_evaluate_dependency_lag_survives_restart(engine: Engine) -> None:
    group = engine.rules(DEPENDENCY)
    engine.add("orders", {"region": "eu"}, (0, 150), (610, 150))
    engine.add("capacity", {"region": "eu"}, (0, 50), (610, 50))
    engine.run(group, 10)
    engine.evaluator = engine.new_evaluator()
    engine.run(group, 615)

    assert engine.states() == {("OrdersOutpaceCapacity", "eu"): FIRING}


ANOMALY = """
groups:
  - name: growth
    rules:
      - alert: SignupsAnomaly
        kpi: signups
        match: {region: eu}
        detector: {type: robust_z, threshold: 4, window: 50, min_samples: 10}
      - alert: SignupsScoreHigh
        expr: anomaly_score(kpi("signups")) > 0.5
"""


def signups(engine: Engine, region: str, values: Sequence[float]) -> None:
    engine.add("signups", {"region": region}, *enumerate(values))


def test_evaluate_anomaly_flags_spike_only(engine: Engine) -> None:
    group = engine.rules(ANOMALY)
    generator = np.random.default_rng(7)
    normal = list(100 + generator.normal(0, 2, size=60))
    signups(engine, "eu", normal)
    signups(engine, "us", [*normal[:59], 400.0])
    engine.run(group, 59)
    assert engine.states() == {}

    engine.add("signups", {"region": "eu"}, (60, 400.0))
    engine.run(group, 60)

    assert engine.states() == {
        ("SignupsAnomaly", "eu"): FIRING,
        ("SignupsScoreHigh", "eu"): FIRING,
    }
    readings = engine.evaluator.detector_readings()
    assert [dict(r.labels) for r in readings] == [{"region": "eu"}]
    (reading,) = readings
    assert reading.score > 4
    assert reading.lower < 100 < reading.upper
    assert reading.upper < 400


def test_evaluate_anomaly_refits_after_window_moves(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[int] = []
    original = RobustZDetector.fit

    def counting_fit(self: RobustZDetector, timestamps: Any, values: Any) -> Any:
        fits.append(len(values))
        return original(self, timestamps, values)

    group = engine.rules(ANOMALY)
    monkeypatch.setattr(RobustZDetector, "fit", counting_fit)
    generator = np.random.default_rng(3)
    signups(engine, "eu", list(100 + generator.normal(0, 2, size=100)))
    engine.run(group, 99)
    for offset in range(100, 115):
        engine.add("signups", {"region": "eu"}, (offset, 100.0))
        engine.run(group, offset)

    # Fitted on 99 samples, then again once 10% of that was scored.
    assert fits == [99, 109]


def test_evaluate_anomaly_stale_series_no_data(engine: Engine) -> None:
    group = engine.rules(ANOMALY)
    signups(engine, "eu", [100.0] * 30 + [400.0])
    engine.run(group, 30)
    assert engine.states()[("SignupsAnomaly", "eu")] == FIRING

    engine.run(group, 30 + STALE_SECONDS + 10)
    assert engine.states()[("SignupsAnomaly", "eu")] == FIRING
    assert [t[2] for t in engine.transitions() if t[0] == "SignupsAnomaly"] == [
        "firing"
    ]


@dataclass
class FakeForecastConfig:
    objective: str = "grow"
    owner: str = "sales"
    direction: str = "increase"
    target: float = 150.0


@dataclass
class FakeForecast:
    trend_forecast: float = float("nan")


@dataclass
class FakeStatus:
    """The part of a key result status that forecast rules read."""

    attainment_probability: float
    status: str = "at_risk"
    config: FakeForecastConfig = field(default_factory=FakeForecastConfig)
    forecast: FakeForecast = field(default_factory=FakeForecast)

    def context(self) -> dict[str, object]:
        return {"attainment_probability": self.attainment_probability}


def set_probability(
    engine: Engine, probability: float, trend: float = float("nan")
) -> None:
    status = FakeStatus(probability, forecast=FakeForecast(trend_forecast=trend))
    engine.statuses["more_orders"] = cast(KeyResultStatus, status)


def test_evaluate_forecast_confirms_and_clears_with_margin(engine: Engine) -> None:
    group = engine.rules(
        """
        groups:
          - name: okr
            rules:
              - alert: OrdersMiss
                key_results: [more_orders]
                attainment_below: 0.5
                clear_margin: 0.1
        """
    )
    states: list[str] = []
    for offset, probability in enumerate([0.4, 0.4, 0.55, 0.59, 0.61]):
        set_probability(engine, probability)
        engine.run(group, offset)
        states.append(next(iter(engine.states().values()), "inactive"))

    assert states == [PENDING, FIRING, FIRING, FIRING, "inactive"]
    assert [t[2] for t in engine.transitions()] == ["firing", "resolved"]


def test_evaluate_forecast_waits_while_trend_meets_target(engine: Engine) -> None:
    group = engine.rules(
        """
        groups:
          - name: okr
            rules:
              - alert: OrdersMiss
                key_results: [more_orders]
                attainment_below: 0.5
        """
    )
    states: list[str] = []
    # The target is 150: a trend of 160 contradicts the low probability.
    for offset, trend in enumerate([160.0, 160.0, 140.0, 140.0, 160.0]):
        set_probability(engine, 0.3, trend)
        engine.run(group, offset)
        states.append(next(iter(engine.states().values()), "inactive"))

    assert states == ["inactive", "inactive", PENDING, FIRING, FIRING]


RELOAD = """
groups:
  - name: shop
    rules:
      - alert: OrdersHigh
        expr: kpi("orders") > {limit}
        for: {for_}
        annotations: {{summary: "{summary}"}}
      - alert: OrdersVeryHigh
        expr: kpi("orders") > 120
"""


def reload_rules(engine: Engine, **fields: Any) -> RuleGroup:
    values = {"limit": 100, "for_": "1h", "summary": "high"} | fields
    group = engine.rules(RELOAD.format(**values))
    engine.evaluator.apply_rules([group], now=START + 100)
    return group


def test_apply_rules_unchanged_rule_keeps_state(engine: Engine) -> None:
    group = reload_rules(engine)
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.run(group, 10)
    before = {s.alert: s for s in engine.evaluator.alerts.values()}

    group = reload_rules(engine, for_="2h", summary="still high")
    engine.run(group, 20)

    after = {s.alert: s for s in engine.evaluator.alerts.values()}
    assert after["OrdersHigh"].state == PENDING
    assert after["OrdersHigh"].active_at == before["OrdersHigh"].active_at
    assert after["OrdersVeryHigh"].fired_at == before["OrdersVeryHigh"].fired_at
    assert engine.transitions() == [("OrdersVeryHigh", "eu", "firing")]


def test_apply_rules_changed_rule_starts_over(engine: Engine) -> None:
    group = reload_rules(engine, for_="0s")
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.run(group, 10)

    group = reload_rules(engine, for_="0s", limit=110)
    assert set(engine.states()) == {("OrdersVeryHigh", "eu")}
    engine.run(group, 200)

    high = [s for s in engine.evaluator.alerts.values() if s.alert == "OrdersHigh"]
    assert high[0].active_at == START + 200
    assert engine.transitions() == [
        ("OrdersHigh", "eu", "firing"),
        ("OrdersVeryHigh", "eu", "firing"),
        ("OrdersHigh", "eu", "resolved"),
        ("OrdersHigh", "eu", "firing"),
    ]


def test_apply_rules_removed_rule_resolves(engine: Engine) -> None:
    group = reload_rules(engine)
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.run(group, 10)

    removed = engine.evaluator.apply_rules([], now=START + 20)

    assert removed == 2
    assert engine.evaluator.alerts == {}
    assert engine.store.load_alerts() == []
    assert engine.transitions()[-1] == ("OrdersVeryHigh", "eu", "resolved")


def test_restore_pending_fires_at_active_at_plus_for(engine: Engine) -> None:
    group = reload_rules(engine, for_="5m")
    engine.add("orders", {"region": "eu"}, *[(t, 150) for t in range(0, 400, 60)])
    engine.run(group, 10)
    engine.run(group, 70)
    engine.evaluator = engine.new_evaluator()
    engine.run(group, 320)

    states = {s.alert: s for s in engine.evaluator.alerts.values()}
    assert states["OrdersHigh"].state == FIRING
    assert states["OrdersHigh"].active_at == START + 10
    assert states["OrdersHigh"].fired_at == START + 320
    firing = [t for t in engine.transitions() if t[2] == "firing"]
    assert firing == [
        ("OrdersVeryHigh", "eu", "firing"),
        ("OrdersHigh", "eu", "firing"),
    ]


def test_restore_firing_sends_no_second_firing(engine: Engine) -> None:
    group = reload_rules(engine, for_="0s")
    engine.add("orders", {"region": "eu"}, (0, 150), (60, 150))
    engine.run(group, 10)
    engine.evaluator = engine.new_evaluator()
    engine.run(group, 70)

    assert [t[2] for t in engine.transitions()] == ["firing", "firing"]
    assert {t[0] for t in engine.transitions()} == {"OrdersHigh", "OrdersVeryHigh"}


def test_restore_changed_rule_resolves_at_start(engine: Engine) -> None:
    group = reload_rules(engine, for_="0s")
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.run(group, 10)
    engine.evaluator = engine.new_evaluator()
    changed = engine.rules(RELOAD.format(limit=140, for_="0s", summary="s"))
    engine.evaluator.apply_rules([changed], now=START + 20)

    assert engine.transitions()[-1] == ("OrdersHigh", "eu", "resolved")
    assert set(engine.states()) == {("OrdersVeryHigh", "eu")}


def test_evaluate_failing_source_keeps_alert_state(engine: Engine) -> None:
    failing: set[str] = set()
    engine.evaluator.failing_kpis = lambda: frozenset(failing)
    group = engine.rules(THRESHOLD.format(no_data="keep_state"))
    engine.add("orders", {"region": "eu"}, (0, 150))
    engine.run(group, 10)
    # The source fails; the value it last delivered would now read false.
    engine.add("orders", {"region": "eu"}, (15, 50))
    failing.add("orders")
    engine.run(group, 20)
    assert engine.states() == {("OrdersHigh", "eu"): FIRING}
    failing.clear()
    engine.run(group, 30)
    assert engine.states() == {}
    assert engine.transitions() == [
        ("OrdersHigh", "eu", "firing"),
        ("OrdersHigh", "eu", "resolved"),
    ]
