"""The long-running service: wires sources, store, rules and exporters."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import requests
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from exporters.metrics import (
    AlertPoint,
    DetectorPoint,
    GroupPoint,
    Instruments,
    KeyResultPoint,
    KpiPoint,
    MetricsSnapshot,
    SourcePoint,
    StateCollector,
)
from monitor._batch_rules import BatchRules
from monitor._filewatch import FileWatcher
from monitor._storelock import StoreLock
from monitor.api import build_routes
from monitor.config import load_config, resolve_rule_files
from monitor.config.model import Config
from monitor.errors import ConfigError, KrwatchError
from monitor.evaluation import RuleEvaluator, stale_after_seconds
from monitor.health import (
    RateLimitedLog,
    SourceAlerts,
    SourceHealth,
    SourceHealthCollector,
)
from monitor.keyresults import KeyResultEvaluator, KeyResultStatus
from monitor.notify import Notifier
from monitor.series import SeriesKey
from monitor.server import HttpServer
from monitor.sources import SOURCE_TYPES, Source, SourceContext
from monitor.store import Store
from monitor.windows import WindowStore
from rules.loader import load_rule_files
from rules.model import RuleGroup

logger = logging.getLogger(__name__)

RETENTION_INTERVAL = timedelta(hours=1)
FIRST_RETENTION_DELAY = timedelta(seconds=30)
USER_AGENT = "krwatch/0.1"


def load_all(path: Path) -> tuple[Config, tuple[RuleGroup, ...]]:
    """Load the config and its rule files, raising ``ConfigError`` on problems."""
    config = load_config(path)
    return config, load_rule_files(config)


class Daemon:
    """krwatch running in this process.

    Parameters
    ----------
    config_path : Path
        Main configuration file; reloads read it again.
    """

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config, self.groups = load_all(config_path)

        self.registry = CollectorRegistry()
        self.instruments = Instruments(self.registry)
        self.registry.register(StateCollector(self.metrics_snapshot))

        store_path = self.config.resolve(self.config.storage.path)
        self.store_lock = StoreLock(store_path)
        try:
            self.store = Store(store_path)
        except BaseException:
            self.store_lock.release()
            raise
        self.windows = WindowStore(self.config.storage.window.total_seconds())
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.rate_limited = RateLimitedLog()

        self.health: dict[str, SourceHealth] = {}
        self.registry.register(SourceHealthCollector(lambda: self.health.values()))
        self.sources: dict[str, Source] = {}
        self.key_result_statuses: dict[str, KeyResultStatus] = {}
        self.reload_successful = True
        self.reload_timestamp = time.time()
        self.ready = threading.Event()
        self._reload_lock = threading.Lock()

        self.notifier = Notifier(self.config, self.store, self.registry)
        self.source_alerts = SourceAlerts(
            self.store, self.notifier.enqueue, self.config.server.base_url
        )
        self.evaluator = RuleEvaluator(
            self.config,
            self.store,
            self.windows,
            key_results=lambda: self.key_result_statuses,
            enqueue=self.notifier.enqueue,
            failing_kpis=self.failing_kpis,
        )
        # Alerts restored from the store whose rule is gone or changed while
        # krwatch was down are resolved now.
        self.evaluator.apply_rules(self.groups)

        self.watcher = FileWatcher(self._watched_files, self._reload_on_change)
        self.key_results = KeyResultEvaluator(self.config.key_results, self.windows)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        try:
            self.server = HttpServer(
                self.config.server.host, self.config.server.port, build_routes(self)
            )
        except OSError as error:
            self.store.close()
            self.store_lock.release()
            raise KrwatchError(
                f"Cannot listen on {self.config.server.listen}: {error.strerror}. "
                "Stop the process that uses it or change server.listen."
            ) from error

    def start(self) -> None:
        """Load history, start the HTTP server, the scheduler and delivery."""
        self._build_sources()
        loaded = self._load_history()
        self.server.start()
        self.notifier.start()
        self._schedule()
        self.scheduler.start()
        self.watcher.start()
        self.ready.set()
        logger.info(
            "krwatch started: %d sources, %d KPIs, %d key results, %d rule groups, "
            "%d samples of history, listening on %s",
            len(self.sources),
            len(self.config.kpis),
            len(self.config.key_results),
            len(self.groups),
            loaded,
            self.config.server.listen,
        )

    def stop(self) -> None:
        self.ready.clear()
        self.watcher.stop()
        self.scheduler.shutdown(wait=True)
        self.notifier.stop()
        self.server.stop()
        for source in self.sources.values():
            source.close()
        self.store.close()
        self.store_lock.release()
        logger.info("krwatch stopped cleanly")

    def _load_history(self) -> int:
        """Load the stored window; series of aligned sources go to dense blocks."""
        since = time.time() - self.config.storage.window.total_seconds()
        source_of = {kpi.name: kpi.source for kpi in self.config.kpis}
        aligned = {s.name: s for s in self.sources.values() if s.aligned_samples}
        blocks: dict[str, dict[SeriesKey, tuple[np.ndarray, np.ndarray]]] = {}
        loaded = 0
        for key, (times, values) in self.store.load_windows(
            since, set(source_of)
        ).items():
            loaded += len(times)
            source = source_of.get(key.kpi)
            if source in aligned:
                blocks.setdefault(source, {})[key] = (times, values)
            else:
                self.windows.add_arrays(key, times, values)
        for name, history in blocks.items():
            interval = aligned[name].config.interval.total_seconds()
            self.windows.load_block(name, history, interval)
        return loaded

    def _build_sources(self) -> None:
        newest: dict[str, float] = {}
        for key, timestamp in self.store.last_timestamps().items():
            newest[key.kpi] = max(newest.get(key.kpi, -math.inf), timestamp)
        context = SourceContext(
            config=self.config,
            session=self.session,
            meta_get=self.store.meta_get,
            meta_set=self.store.meta_set,
            last_timestamps=newest,
        )
        for old in self.sources.values():
            old.close()
        self.sources = {}
        for source_config in self.config.sources:
            kpis = [k for k in self.config.kpis if k.source == source_config.name]
            source_type = SOURCE_TYPES[source_config.type]
            self.sources[source_config.name] = source_type(source_config, kpis, context)
            previous = self.health.get(source_config.name)
            self.health[source_config.name] = previous or SourceHealth(
                name=source_config.name, type=source_config.type
            )
        for name in set(self.health) - set(self.sources):
            del self.health[name]
        if self.source_alerts.retire(
            set(self.source_alerts.states) - set(self.sources)
        ):
            self.notifier.wake()

    def failing_sources(self) -> frozenset[str]:
        """Return the names of the sources whose last poll failed."""
        return frozenset(name for name, h in self.health.items() if h.failing)

    def kpi_sources(self) -> dict[str, str]:
        """Return the source name of each configured KPI."""
        return {kpi.name: kpi.source for kpi in self.config.kpis}

    def failing_kpis(self) -> frozenset[str]:
        """Return the KPIs whose source is failing, for the no-data policy."""
        failing = self.failing_sources()
        return frozenset(
            k for k, source in self.kpi_sources().items() if source in failing
        )

    def _schedule(self) -> None:
        now = datetime.now(UTC)
        for source in self.sources.values():
            seconds = source.config.interval.total_seconds()
            self.scheduler.add_job(
                self.poll_source,
                "interval",
                args=[source.name],
                seconds=seconds,
                id=f"source:{source.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(seconds / 2)),
                next_run_time=now,
                replace_existing=True,
            )
        interval = self.config.evaluation.interval.total_seconds()
        self.scheduler.add_job(
            self.evaluate_key_results,
            "interval",
            seconds=interval,
            id="key_results",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval / 2)),
            next_run_time=now + timedelta(seconds=1),
            replace_existing=True,
        )
        for group in self.groups:
            seconds = (
                group.interval or self.config.evaluation.interval
            ).total_seconds()
            self.scheduler.add_job(
                self.evaluate_group,
                "interval",
                args=[group.name],
                seconds=seconds,
                id=f"group:{group.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(seconds / 2)),
                next_run_time=now + timedelta(seconds=2),
                replace_existing=True,
            )
        self.scheduler.add_job(
            self.apply_retention,
            "interval",
            seconds=RETENTION_INTERVAL.total_seconds(),
            id="retention",
            max_instances=1,
            coalesce=True,
            # The first polls may bring more history than the window holds,
            # such as a whole CSV file, so the first trim comes soon.
            next_run_time=now + FIRST_RETENTION_DELAY,
            replace_existing=True,
        )

    def poll_source(self, name: str) -> None:
        """Poll one source, store its samples and record its health."""
        source = self.sources.get(name)
        health = self.health.get(name)
        if source is None or health is None:
            return

        started = time.monotonic()
        now = time.time()
        try:
            result = source.poll(now)
            inserted = self.store.append_samples(result.samples)
            if source.aligned_samples:
                interval = source.config.interval.total_seconds()
                self.windows.add_poll(name, result.samples, interval)
            else:
                self.windows.add_samples(result.samples)
        except Exception as error:
            logger.exception("Polling source %s failed", name)
            self.instruments.poll_errors.labels(name, "internal").inc()
            health.record_failure(now, "internal", f"{type(error).__name__}: {error}")
            self._update_source_alert(source, health)
            return
        finally:
            elapsed = time.monotonic() - started
            health.last_duration_seconds = elapsed
            self.instruments.poll_duration.labels(name).observe(elapsed)
        self.instruments.samples.labels(name).inc(inserted)
        for problem in result.errors:
            self.instruments.poll_errors.labels(name, problem.reason).inc()
            self.rate_limited.warning(name, problem.reason, str(problem))
        health.held_back = result.held_back
        if result.failed:
            first = result.errors[0]
            health.record_failure(now, first.reason, str(first))
        else:
            health.record_success(now, inserted)
            logger.debug("Polled source %s: %d new samples", name, inserted)
        self._update_source_alert(source, health)

    def _update_source_alert(self, source: Source, health: SourceHealth) -> None:
        health.failing_for_seconds = source.failing_for_seconds
        try:
            queued = self.source_alerts.update(health, source.failing_for_seconds)
        except Exception:
            logger.exception(
                "Updating the failing alert of source %s failed", health.name
            )
            return
        if queued:
            self.notifier.wake()

    def evaluate_key_results(self) -> None:
        started = time.monotonic()
        try:
            self.key_result_statuses = self.key_results.evaluate(time.time())
        except Exception:
            logger.exception("Evaluating key results failed")
        self.instruments.key_result_duration.observe(time.monotonic() - started)

    def evaluate_group(self, name: str) -> None:
        group = next((g for g in self.groups if g.name == name), None)
        if group is None:
            return

        try:
            report = self.evaluator.evaluate_group(group)
        except Exception:
            logger.exception("Evaluating rule group %s failed", name)
            self.instruments.rule_failures.labels(name).inc()
            return
        self.instruments.rule_evaluations.labels(name).inc()
        self.instruments.rule_duration.labels(name).observe(report.duration_seconds)
        if report.failed_rules:
            self.instruments.rule_failures.labels(name).inc(report.failed_rules)
        self.notifier.wake()

    def apply_retention(self) -> None:
        cutoff = time.time() - self.config.storage.retention.total_seconds()
        try:
            deleted = self.store.delete_samples_before(cutoff)
        except Exception:
            logger.exception("Deleting samples past the retention failed")
            return
        self.windows.trim(time.time())
        if deleted:
            logger.info("Deleted %d samples older than the retention", deleted)

    def reload(self) -> tuple[bool, list[str]]:
        """Load the config again; keep the running one if the new one fails."""
        with self._reload_lock:
            # The files are read now, so the watcher does not reload them again.
            self.watcher.mark_applied()
            try:
                config, groups = load_all(self.config_path)
            except ConfigError as error:
                self.reload_successful = False
                for problem in error.problems:
                    logger.error("Reload rejected: %s", problem)
                count = len(error.problems)
                logger.error(
                    "Reload rejected with %d %s; the running configuration "
                    "stays in effect",
                    count,
                    "problem" if count == 1 else "problems",
                )
                return False, list(error.problems)
            except Exception as error:
                self.reload_successful = False
                logger.exception("Reload failed; the running configuration stays")
                return False, [f"{self.config_path}: {error}"]

            self._warn_restart_needed(config)
            self._apply(config, groups)
            self.reload_successful = True
            self.reload_timestamp = time.time()
            logger.info(
                "Reloaded configuration: %d sources, %d KPIs, %d key results, "
                "%d rule groups",
                len(config.sources),
                len(config.kpis),
                len(config.key_results),
                len(groups),
            )
            return True, []

    def _warn_restart_needed(self, config: Config) -> None:
        """Log the changed settings that only take effect after a restart."""
        running = {
            "server.listen": self.config.server.listen,
            "storage.path": str(self.config.resolve(self.config.storage.path)),
        }
        loaded = {
            "server.listen": config.server.listen,
            "storage.path": str(config.resolve(config.storage.path)),
        }
        for setting, value in loaded.items():
            if value != running[setting]:
                logger.warning(
                    "%s changed from %s to %s; krwatch keeps using %s until it "
                    "is restarted",
                    setting,
                    running[setting],
                    value,
                    running[setting],
                )

    def _apply(self, config: Config, groups: tuple[RuleGroup, ...]) -> None:
        for job in self.scheduler.get_jobs():
            if job.id != "retention":
                job.remove()
        self.config = config
        self.groups = groups
        self.windows.window_seconds = config.storage.window.total_seconds()
        self.windows.drop_kpis_except({kpi.name for kpi in config.kpis})
        self.evaluator.config = config
        self.evaluator.stale_after = stale_after_seconds(config)
        self.evaluator.batches = BatchRules(self.windows, self.evaluator.stale_after)
        self.evaluator.apply_rules(groups)
        self.key_results.key_results = config.key_results
        self.key_result_statuses = {
            name: status
            for name, status in self.key_result_statuses.items()
            if name in {kr.name for kr in config.key_results}
        }
        self.notifier.reconfigure(config)
        self._build_sources()
        self._schedule()

    def _watched_files(self) -> list[Path]:
        return [self.config_path, *resolve_rule_files(self.config)]

    def _reload_on_change(self) -> None:
        self.reload()

    def metrics_snapshot(self) -> MetricsSnapshot:
        kpis = []
        for key, times, values in self.windows.snapshot():
            if len(times):
                kpis.append(
                    KpiPoint(
                        kpi=key.kpi,
                        labels=dict(key.labels),
                        value=float(values[-1]),
                        timestamp=float(times[-1]),
                    )
                )
        return MetricsSnapshot(
            kpis=kpis,
            key_results=[
                _key_result_point(s) for s in self.key_result_statuses.values()
            ],
            alerts=[
                AlertPoint(alert=a.alert, state=a.state, labels=dict(a.labels))
                for a in [
                    *self.evaluator.alerts.values(),
                    *self.source_alerts.states.values(),
                ]
                if a.state in ("pending", "firing")
            ],
            sources=[
                SourcePoint(
                    name=h.name, type=h.type, up=h.up, last_success=h.last_success
                )
                for h in self.health.values()
            ],
            groups=[
                GroupPoint(
                    name=r.group,
                    last_duration_seconds=r.duration_seconds,
                    last_evaluation=r.evaluated_at,
                )
                for r in self.evaluator.reports.values()
            ],
            detectors=[
                DetectorPoint(
                    kpi=reading.kpi,
                    rule=reading.rule,
                    labels=dict(reading.labels),
                    score=reading.score,
                    lower=reading.lower,
                    upper=reading.upper,
                )
                for reading in self.evaluator.detector_readings()
            ],
            reload_successful=self.reload_successful,
            reload_timestamp=self.reload_timestamp,
        )


def _key_result_point(status: KeyResultStatus) -> KeyResultPoint:
    f = status.forecast
    values: Mapping[str, Any] = {
        "progress": f.progress,
        "expected_progress": f.expected_progress,
        "current": f.current,
        "baseline": status.config.baseline,
        "target": status.config.target,
        "forecast": f.forecast,
        "lower_80": f.lower_80,
        "upper_80": f.upper_80,
        "lower_95": f.lower_95,
        "upper_95": f.upper_95,
        "attainment_probability": f.attainment_probability,
        "shortfall": f.shortfall,
        "required_run_rate": f.required_run_rate,
        "due": status.due.timestamp(),
    }
    return KeyResultPoint(
        name=status.config.name,
        objective=status.config.objective,
        kpi=status.config.kpi,
        owner=status.config.owner,
        status=f.status,
        values={k: float(v) for k, v in values.items()},
    )
