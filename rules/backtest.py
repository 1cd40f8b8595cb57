"""Replay samples through the real evaluation cycle in simulated time.

``Replay`` drives ``monitor.evaluation.RuleEvaluator`` and
``monitor.keyresults.KeyResultEvaluator`` over an in-memory store, on the
schedule the daemon keeps: at each tick, samples up to the tick arrive
first, then key results are evaluated every ``evaluation.interval`` and
each rule group at its own interval, and the windows are trimmed hourly. It
records every alert's timeline. ``krwatch test rules`` and ``krwatch
backtest`` both run on it.

``load_samples`` reads the history to replay from the SQLite store or from
the CSV sources, and ``summarize`` turns timelines into the backtest report.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from exporters.notification import Notification
from monitor.config.model import Config
from monitor.durations import format_duration
from monitor.evaluation import RuleEvaluator
from monitor.keyresults import KeyResultEvaluator, KeyResultStatus
from monitor.series import Sample
from monitor.store import Store
from monitor.windows import WindowStore
from rules.lifecycle import FIRING, PENDING, AlertState
from rules.model import RuleGroup

logger = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 3600.0
"""How often the windows are trimmed, as the daemon's retention job does."""

DataSource = Literal["store", "csv"]


@dataclass(kw_only=True)
class Episode:
    """One pending-to-inactive episode of one alert."""

    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    """When a firing episode resolved, or a pending one went inactive."""
    inhibited: bool = False
    released_at: float | None = None
    """When the held-back firing notification of an inhibited alert was sent."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Annotations of the firing notification."""
    value: float | None = None


@dataclass(kw_only=True)
class AlertTimeline:
    """Every episode of one alert, in time order."""

    alert: str
    group: str
    fingerprint: str
    labels: Mapping[str, str]
    episodes: list[Episode] = field(default_factory=list)

    def firing_episodes(self) -> list[Episode]:
        return [episode for episode in self.episodes if episode.fired_at is not None]


class Replay:
    """Run the evaluation cycle over samples, tick by tick.

    Parameters
    ----------
    config : Config
        KPIs, key results and intervals; ``storage.path`` is not used.
    groups : sequence of RuleGroup
    start : float
        Time of the first tick, epoch seconds; every schedule is aligned to it.
    """

    def __init__(
        self, config: Config, groups: Sequence[RuleGroup], *, start: float
    ) -> None:
        self.config = config
        self.groups = tuple(groups)
        self.start = start
        self.now = start
        self.windows = WindowStore(config.storage.window.total_seconds())
        self.store = Store(Path(":memory:"))
        self.statuses: dict[str, KeyResultStatus] = {}
        self.notifications: list[Notification] = []
        self.timelines: dict[str, AlertTimeline] = {}
        self.key_results = KeyResultEvaluator(config.key_results, self.windows)
        self.evaluator = RuleEvaluator(
            config,
            self.store,
            self.windows,
            key_results=lambda: self.statuses,
            enqueue=self._enqueue,
            release=self._release,
        )
        apply_rules = getattr(self.evaluator, "apply_rules", None)
        if apply_rules is not None:
            apply_rules(self.groups, now=start)
        self._times = np.empty(0)
        self._samples: list[Sample] = []
        self._cursor = 0
        self._next_trim = start + TRIM_INTERVAL_SECONDS
        default = config.evaluation.interval.total_seconds()
        self._key_result_interval = default
        self._intervals = [
            (group.interval.total_seconds() if group.interval else default)
            for group in self.groups
        ]
        self._tick_index = 0

    def add_samples(self, samples: Iterable[Sample]) -> None:
        """Queue samples; each reaches the windows at the first tick at or after it."""
        pending = self._samples[self._cursor :]
        pending.extend(samples)
        pending.sort(key=lambda sample: sample.timestamp)
        self._samples = pending
        self._times = np.fromiter(
            (sample.timestamp for sample in pending), np.float64, len(pending)
        )
        self._cursor = 0

    def ticks_until(self, end: float) -> list[float]:
        """Return the tick times after the last one run, up to ``end``."""
        step = math.gcd(*(round(seconds * 1000) for seconds in self._all_intervals()))
        step_seconds = max(step, 1) / 1000
        count = math.floor((end - self.start) / step_seconds + 1e-9)
        first = self._tick_index
        return [self.start + index * step_seconds for index in range(first, count + 1)]

    def _all_intervals(self) -> list[float]:
        return [self._key_result_interval, *self._intervals]

    def run_until(
        self, end: float, progress: Callable[[float], None] | None = None
    ) -> None:
        """Run every tick up to and including ``end``."""
        for tick in self.ticks_until(end):
            self._run_tick(tick)
            self._tick_index += 1
            if progress is not None:
                progress(tick)

    def _due(self, tick: float, interval: float) -> bool:
        elapsed = round((tick - self.start) * 1000)
        return elapsed % max(round(interval * 1000), 1) == 0

    def _run_tick(self, tick: float) -> None:
        self.now = tick
        self._deliver(tick)
        if tick >= self._next_trim:
            self.windows.trim(tick)
            self._next_trim += TRIM_INTERVAL_SECONDS
        if self._due(tick, self._key_result_interval):
            self.statuses = self.key_results.evaluate(tick)
        for group, interval in zip(self.groups, self._intervals, strict=True):
            if not self._due(tick, interval):
                continue
            before = dict(self.evaluator.alerts)
            self.evaluator.evaluate_group(group, now=tick)
            self._record(before, tick)

    def _deliver(self, tick: float) -> None:
        end = int(np.searchsorted(self._times, tick, side="right"))
        if end > self._cursor:
            self.windows.add_samples(self._samples[self._cursor : end])
            self._cursor = end

    def _enqueue(self, connection: object, notification: Notification) -> None:
        self.notifications.append(notification)
        timeline = self._timeline_of_notification(notification)
        episode = timeline.episodes[-1] if timeline.episodes else None
        if notification.state == "firing" and episode is not None:
            episode.inhibited = notification.inhibited
            episode.annotations = dict(notification.annotations)
            episode.value = notification.value

    def _release(self, connection: object, fingerprints: list[str]) -> int:
        for fingerprint in fingerprints:
            timeline = self.timelines.get(fingerprint)
            if timeline is not None and timeline.episodes:
                timeline.episodes[-1].released_at = self.now
        return len(fingerprints)

    def _timeline_of_notification(self, notification: Notification) -> AlertTimeline:
        timeline = self.timelines.get(notification.fingerprint)
        if timeline is None:
            timeline = self.timelines[notification.fingerprint] = AlertTimeline(
                alert=notification.alert,
                group="",
                fingerprint=notification.fingerprint,
                labels=dict(notification.labels),
            )
        return timeline

    def _record(self, before: Mapping[str, AlertState], tick: float) -> None:
        after = self.evaluator.alerts
        for key in set(before) | set(after):
            old, new = before.get(key), after.get(key)
            old_state = old.state if old is not None else "inactive"
            new_state = new.state if new is not None else "inactive"
            if old_state == new_state:
                continue
            state = new if new is not None else old
            assert state is not None
            timeline = self.timelines.get(key)
            if timeline is None:
                timeline = self.timelines[key] = AlertTimeline(
                    alert=state.alert,
                    group=state.group,
                    fingerprint=key,
                    labels=dict(state.labels),
                )
            timeline.group = state.group
            if old_state == "inactive":
                timeline.episodes.append(Episode(active_at=tick))
            episode = timeline.episodes[-1] if timeline.episodes else None
            if episode is None:
                # An alert restored as pending or firing has no start here.
                episode = Episode(active_at=tick)
                timeline.episodes.append(episode)
            if new_state == FIRING:
                episode.fired_at = tick
            elif new_state == "inactive" or (
                old_state == FIRING and new_state == PENDING
            ):
                episode.resolved_at = tick

    def firing_alerts(self, alertname: str | None = None) -> list[AlertState]:
        """Return the alerts that fire now, of one alert name or all."""
        return [
            state
            for state in self.evaluator.alerts.values()
            if state.state == FIRING and (alertname is None or state.alert == alertname)
        ]

    def close(self) -> None:
        self.store.close()


def load_samples(
    config: Config, data: DataSource, since: float, until: float
) -> list[Sample]:
    """Read the samples of every configured KPI with ``since < t <= until``.

    Parameters
    ----------
    config : Config
    data : {"store", "csv"}
        ``store`` reads ``storage.path``; ``csv`` reads each ``csv`` source's
        file with its own timestamps, without the replay mapping. Sources of
        other types are skipped with a warning.
    since, until : float
        Epoch seconds.

    Raises
    ------
    BacktestError
        If the store file does not exist.
    """
    if data == "store":
        return _load_store_samples(config, since, until)

    return _load_csv_samples(config, since, until)


class BacktestError(Exception):
    """The backtest cannot run with the given configuration or options."""


def _load_store_samples(config: Config, since: float, until: float) -> list[Sample]:
    path = config.resolve(config.storage.path)
    if not path.is_file():
        raise BacktestError(
            f"The store {str(path)!r} does not exist; run krwatch to collect "
            "history first, or use --data csv to read the CSV sources."
        )

    store = Store(path)
    try:
        windows = store.load_windows(since, [kpi.name for kpi in config.kpis])
    finally:
        store.close()
    samples: list[Sample] = []
    for key, (times, values) in windows.items():
        keep = times <= until
        samples.extend(
            Sample(key, float(t), float(v))
            for t, v in zip(times[keep], values[keep], strict=True)
        )
    return samples


def _load_csv_samples(config: Config, since: float, until: float) -> list[Sample]:
    import requests

    from monitor.sources.base import SourceContext
    from monitor.sources.csv import CsvSource

    context = SourceContext(
        config=config,
        session=requests.Session(),
        meta_get=lambda key: None,
        meta_set=lambda key, value: None,
    )
    samples: list[Sample] = []
    for source_config in config.sources:
        if source_config.type != "csv":
            logger.warning(
                "Skipping source %s of type %s; the backtest reads only csv "
                "sources, or the store with --data store",
                source_config.name,
                source_config.type,
            )
            continue
        settings = replace(source_config.settings, replay=None)  # type: ignore[type-var]
        kpis = [kpi for kpi in config.kpis if kpi.source == source_config.name]
        source = CsvSource(replace(source_config, settings=settings), kpis, context)
        result = source.poll(math.inf)
        for error in result.errors:
            logger.warning("Source %s: %s", source_config.name, error)
        samples.extend(s for s in result.samples if since < s.timestamp <= until)
    return samples


@dataclass(frozen=True, kw_only=True)
class RuleSummary:
    """Backtest figures of one rule."""

    group: str
    alert: str
    alerts: int
    """Label sets that fired at least once."""
    firing_episodes: int
    firing_seconds: float
    flaps: int
    """Firing episodes that started after an earlier one of the same alert
    resolved."""


def summarize(
    timelines: Iterable[AlertTimeline], groups: Sequence[RuleGroup], end: float
) -> list[RuleSummary]:
    """Return one summary per rule of ``groups``, in file order.

    An episode still firing at ``end`` counts up to ``end``.
    """
    by_rule: dict[tuple[str, str], list[AlertTimeline]] = {}
    for timeline in timelines:
        by_rule.setdefault((timeline.group, timeline.alert), []).append(timeline)
    summaries = []
    for group in groups:
        for rule in group.rules:
            fired = [
                timeline.firing_episodes()
                for timeline in by_rule.get((group.name, rule.alert), [])
            ]
            fired = [episodes for episodes in fired if episodes]
            seconds = sum(
                (episode.resolved_at if episode.resolved_at is not None else end)
                - (episode.fired_at or 0.0)
                for episodes in fired
                for episode in episodes
            )
            summaries.append(
                RuleSummary(
                    group=group.name,
                    alert=rule.alert,
                    alerts=len(fired),
                    firing_episodes=sum(len(episodes) for episodes in fired),
                    firing_seconds=seconds,
                    flaps=sum(len(episodes) - 1 for episodes in fired),
                )
            )
    return summaries


def format_time(timestamp: float | None) -> str:
    """Format epoch seconds as ISO 8601 UTC, or ``-`` for None."""
    if timestamp is None:
        return "-"
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def report_json(
    timelines: Iterable[AlertTimeline], summaries: Sequence[RuleSummary]
) -> dict[str, Any]:
    """Return the backtest result as JSON-safe data."""
    return {
        "alerts": [
            {
                "alert": timeline.alert,
                "group": timeline.group,
                "fingerprint": timeline.fingerprint,
                "labels": dict(timeline.labels),
                "episodes": [
                    {
                        "active_at": format_time(episode.active_at),
                        "fired_at": format_time(episode.fired_at)
                        if episode.fired_at is not None
                        else None,
                        "resolved_at": format_time(episode.resolved_at)
                        if episode.resolved_at is not None
                        else None,
                        "inhibited": episode.inhibited,
                        "released_at": format_time(episode.released_at)
                        if episode.released_at is not None
                        else None,
                        "annotations": dict(episode.annotations),
                    }
                    for episode in timeline.episodes
                ],
            }
            for timeline in _sorted(timelines)
        ],
        "summary": [
            {
                "group": summary.group,
                "alert": summary.alert,
                "alerts": summary.alerts,
                "firing_episodes": summary.firing_episodes,
                "firing_seconds": summary.firing_seconds,
                "flaps": summary.flaps,
            }
            for summary in summaries
        ],
    }


def report_table(
    timelines: Iterable[AlertTimeline], summaries: Sequence[RuleSummary]
) -> str:
    """Return the backtest result as plain-text tables."""
    lines = ["Alert timelines:"]
    rows = [("alert", "labels", "pending", "firing", "resolved", "note")]
    for timeline in _sorted(timelines):
        labels = ",".join(
            f"{k}={v}" for k, v in sorted(timeline.labels.items()) if k != "alertname"
        )
        for episode in timeline.episodes:
            note = ""
            if episode.inhibited:
                note = "inhibited"
                if episode.released_at is not None:
                    note += f", released {format_time(episode.released_at)}"
            rows.append(
                (
                    timeline.alert,
                    labels or "-",
                    format_time(episode.active_at),
                    format_time(episode.fired_at),
                    format_time(episode.resolved_at),
                    note,
                )
            )
    if len(rows) == 1:
        lines.append("  (no alert became pending)")
    else:
        lines.extend(_table(rows))
    lines.append("")
    lines.append("Summary per rule:")
    summary_rows = [("group", "alert", "alerts", "episodes", "time firing", "flaps")]
    for summary in summaries:
        summary_rows.append(
            (
                summary.group,
                summary.alert,
                str(summary.alerts),
                str(summary.firing_episodes),
                format_duration(timedelta(seconds=round(summary.firing_seconds))),
                str(summary.flaps),
            )
        )
    lines.extend(_table(summary_rows))
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def _sorted(timelines: Iterable[AlertTimeline]) -> list[AlertTimeline]:
    return sorted(
        timelines,
        key=lambda t: (
            t.episodes[0].active_at if t.episodes else 0.0,
            t.alert,
            t.fingerprint,
        ),
    )


class ProgressBar:
    """A one-line progress bar on a terminal; silent on anything else.

    Parameters
    ----------
    start, end : float
        The replayed range, epoch seconds.
    stream : text stream, optional
        Defaults to ``sys.stderr``.
    """

    WIDTH = 30

    def __init__(self, start: float, end: float, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = start
        self.span = max(end - start, 1e-9)
        self._shown = -1

    def update(self, now: float) -> None:
        if not self.enabled:
            return
        percent = int(100 * min(max((now - self.start) / self.span, 0.0), 1.0))
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {percent:3d}% {format_time(now)}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


def run_backtest(
    config: Config,
    groups: Sequence[RuleGroup],
    samples: Sequence[Sample],
    *,
    start: float,
    end: float,
    progress: Callable[[float], None] | None = None,
) -> Replay:
    """Replay ``samples`` from ``start`` to ``end`` and return the finished replay.

    Samples before ``start`` are history: they are in the windows at the
    first tick, as the daemon loads stored history when it starts.
    """
    replay = Replay(config, groups, start=start)
    replay.add_samples(samples)
    replay.run_until(end, progress)
    return replay


__all__ = [
    "AlertTimeline",
    "BacktestError",
    "Episode",
    "ProgressBar",
    "Replay",
    "RuleSummary",
    "format_time",
    "load_samples",
    "report_json",
    "report_table",
    "run_backtest",
    "summarize",
]
