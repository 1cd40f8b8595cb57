"""Inhibition from rule to outbox to receiver, with the real dispatcher."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import numpy as np

from exporters import outbox
from exporters.dispatcher import Dispatcher
from exporters.receivers import build_receivers
from exporters.routing import Router
from monitor.config import load_config
from monitor.evaluation import RuleEvaluator
from monitor.series import SeriesKey
from monitor.store import Store
from monitor.windows import WindowStore
from rules.loader import load_rule_file

# Evaluation times lie in the past, so rows the outbox queues at the real
# time are due for the dispatcher, which runs on the real clock.
START = float(int(time.time())) - 600.0

CONFIG = """\
sources:
  - {name: shop, type: csv, path: data.csv}
kpis:
  - name: orders
    source: shop
    drives: [{kpi: delivery_delay, lag: 1d}]
  - {name: delivery_delay, source: shop}
receivers:
  - {name: ops, type: log, path: sent.jsonl}
route:
  receiver: ops
  group_wait: 0s
  group_by: ["..."]
"""

RULES = """\
groups:
  - name: shop
    rules:
      - alert: OrdersLow
        expr: kpi("orders") < 10
      - alert: DeliveryLate
        expr: kpi("delivery_delay") > 5
        inhibit_when_upstream_firing: true
"""


def test_inhibited_alert_is_sent_once_upstream_resolves(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("timestamp,value\n")
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES))
    config = load_config(tmp_path / "config.yaml")
    (group,) = load_rule_file(
        tmp_path / "rules.yaml", kpis=["orders", "delivery_delay"]
    )
    store = Store(tmp_path / "krwatch.db")
    with store.transaction() as connection:
        outbox.create_tables(connection)
    router = Router(config.route)
    windows = WindowStore(86_400.0)
    evaluator = RuleEvaluator(
        config,
        store,
        windows,
        key_results=dict,
        enqueue=lambda connection, n: outbox.enqueue(
            connection, n, router.route(n.labels)
        ),  # type: ignore[arg-type]
    )
    receivers = build_receivers(config.receivers, base_dir=tmp_path)
    dispatcher = Dispatcher(store, receivers)

    def cycle(
        offset: float, orders: float, delay: float
    ) -> list[tuple[str, str, bool]]:
        now = START + offset
        for kpi, value in (("orders", orders), ("delivery_delay", delay)):
            windows.add_arrays(SeriesKey(kpi), np.array([now]), np.array([value]))
        evaluator.evaluate_group(group, now=now)
        dispatcher.run_once("ops")
        sent = tmp_path / "sent.jsonl"
        lines = sent.read_text().splitlines() if sent.exists() else []
        return [
            (d["alert"], d["state"], d["inhibited"]) for d in map(json.loads, lines)
        ]

    # Orders collapse and deliveries run late at the same time: only the cause pages.
    assert cycle(0, orders=5, delay=9) == [("OrdersLow", "firing", False)]
    # Orders recover while deliveries are still late: the held alert goes out
    # at once; the resolve of OrdersLow waits for its group_interval.
    assert cycle(60, orders=50, delay=9) == [
        ("OrdersLow", "firing", False),
        ("DeliveryLate", "firing", False),
    ]
    store.close()
