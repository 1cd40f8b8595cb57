"""Key result evaluation: periods, series selection and the forecast call."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from detectors.keyresults import (
    ErrorPool,
    KeyResultForecast,
    KeyResultForecaster,
    KeyResultSpec,
)
from monitor.config.model import KeyResultConfig
from monitor.series import SeriesKey
from monitor.windows import WindowStore

logger = logging.getLogger(__name__)

STATUSES = (
    "on_track",
    "at_risk",
    "off_track",
    "insufficient_data",
    "achieved",
    "missed",
)


POOL_ORIGINS_PER_UPDATE = 1
"""Origins the default error pool fits per key result evaluation.

Each origin fits the model at up to six history lengths, so one origin per
evaluation bounds the evaluations that add pool errors.
"""


def period_bounds(config: KeyResultConfig, now: datetime) -> tuple[datetime, datetime]:
    """Return the start and due date of the key result's current period."""
    if config.period is None:
        assert config.start is not None and config.due is not None
        return config.start, config.due

    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if config.period == "week":
        start = midnight - timedelta(days=now.weekday())
        return start, start + timedelta(days=7)

    if config.period == "month":
        start = midnight.replace(day=1)
        return start, _add_months(start, 1)

    first_month = 3 * ((now.month - 1) // 3) + 1
    start = midnight.replace(month=first_month, day=1)
    return start, _add_months(start, 3)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


@dataclass(frozen=True, kw_only=True)
class KeyResultStatus:
    """The latest evaluation of one key result."""

    config: KeyResultConfig
    series: SeriesKey | None
    start: datetime
    due: datetime
    evaluated_at: float
    forecast: KeyResultForecast

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def status(self) -> str:
        return self.forecast.status

    @property
    def progress(self) -> float:
        return self.forecast.progress

    @property
    def expected_progress(self) -> float:
        return self.forecast.expected_progress

    @property
    def attainment_probability(self) -> float:
        return self.forecast.attainment_probability

    def context(self) -> dict[str, object]:
        """Return the key result context sent with notifications and the API."""
        f = self.forecast
        decide_by = (
            None
            if f.decide_by is None
            else datetime.fromtimestamp(f.decide_by, UTC).isoformat()
        )
        return {
            "name": self.config.name,
            "objective": self.config.objective,
            "owner": self.config.owner,
            "kpi": self.config.kpi,
            "measure": self.config.measure,
            "direction": self.config.direction,
            "baseline": self.config.baseline,
            "target": self.config.target,
            "start": self.start.isoformat(),
            "due": self.due.isoformat(),
            "status": f.status,
            "current": _json_number(f.current),
            "progress": _json_number(f.progress),
            "expected_progress": _json_number(f.expected_progress),
            "forecast": _json_number(f.forecast),
            "lower_80": _json_number(f.lower_80),
            "upper_80": _json_number(f.upper_80),
            "lower_95": _json_number(f.lower_95),
            "upper_95": _json_number(f.upper_95),
            "attainment_probability": _json_number(f.attainment_probability),
            "shortfall": _json_number(f.shortfall),
            "required_run_rate": _json_number(f.required_run_rate),
            "trend_forecast": _json_number(f.trend_forecast),
            "decide_by": decide_by,
            "reason": f.reason,
        }


def _no_series_reason(config: KeyResultConfig) -> str:
    if not config.labels:
        return f"The KPI {config.kpi} has no samples in the window yet."
    wanted = ", ".join(f'{name}="{value}"' for name, value in config.labels.items())
    return (
        f"No series of the KPI {config.kpi} has the labels {wanted}; check the "
        "key result's labels against the series of the KPI."
    )


def _forecast_key(name: str, series: SeriesKey | None) -> str:
    """Return the forecaster's cache key, which changes when the series does."""
    return f"{name}|{series}"


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


class KeyResultEvaluator:
    """Evaluate every configured key result against the in-memory windows.

    Each key result's model is refitted only when its series gains a
    complete step or its period changes, and its paths are drawn again when
    the error pool gains errors (see :class:`KeyResultForecaster`). Other
    cycles recompute only the current value, the booked part of a
    cumulative key result and the probability against the target.

    Parameters
    ----------
    key_results : tuple of KeyResultConfig
    windows : WindowStore
    error_pool : ErrorPool
        Pooled forecast errors of this installation; updated here from each
        key result's own series.
    """

    def __init__(
        self,
        key_results: tuple[KeyResultConfig, ...],
        windows: WindowStore,
        error_pool: ErrorPool | None = None,
    ) -> None:
        self.key_results = key_results
        self.windows = windows
        if error_pool is None:
            error_pool = ErrorPool(max_origins_per_update=POOL_ORIGINS_PER_UPDATE)
        self._error_pool = error_pool
        self.forecaster = KeyResultForecaster(error_pool=self._error_pool)
        self._ambiguous: dict[str, int] = {}
        """Series count last logged per key result that matches several."""

    @property
    def error_pool(self) -> ErrorPool:
        """The pooled forecast errors that calibrate every key result."""
        return self._error_pool

    def evaluate(self, now: float) -> dict[str, KeyResultStatus]:
        """Evaluate every key result at ``now`` (epoch seconds UTC).

        A key result whose evaluation raises is logged and left out of the
        result, so one broken key result does not hide the others.
        """
        moment = datetime.fromtimestamp(now, UTC)
        results: dict[str, KeyResultStatus] = {}
        for config in self.key_results:
            try:
                results[config.name] = self._evaluate_one(config, moment, now)
            except Exception:
                logger.exception("Evaluating key result %s failed", config.name)
        # Key results removed by a reload, or moved to another series, release
        # their cached paths.
        self.forecaster.retain(
            _forecast_key(status.name, status.series) for status in results.values()
        )
        return results

    def _evaluate_one(
        self, config: KeyResultConfig, moment: datetime, now: float
    ) -> KeyResultStatus:
        start, due = period_bounds(config, moment)
        spec = KeyResultSpec(
            measure=config.measure,
            direction=config.direction,
            baseline=config.baseline,
            target=config.target,
            start=start.timestamp(),
            due=due.timestamp(),
        )
        key, times, values = self._select_series(config)
        if key is not None:
            self.error_pool.update(
                times, values, now, key=str(key), measure=config.measure
            )
        forecast = self.forecaster.forecast(
            _forecast_key(config.name, key), spec, times, values, now
        )
        if key is None and forecast.status == "insufficient_data":
            forecast = dataclasses.replace(forecast, reason=_no_series_reason(config))
        return KeyResultStatus(
            config=config,
            series=key,
            start=start,
            due=due,
            evaluated_at=now,
            forecast=forecast,
        )

    def _select_series(
        self, config: KeyResultConfig
    ) -> tuple[SeriesKey | None, np.ndarray, np.ndarray]:
        wanted = set(config.labels.items())
        matches = [
            (key, times, values)
            for key, times, values in self.windows.snapshot(config.kpi)
            if wanted <= set(key.labels)
        ]
        if not matches:
            return None, np.empty(0), np.empty(0)

        if len(matches) > 1 and self._ambiguous.get(config.name) != len(matches):
            # Logged when the count changes, not at every evaluation.
            self._ambiguous[config.name] = len(matches)
            logger.warning(
                "Key result %s matches %d series of KPI %s; using %s. Add labels "
                "to the key result to pick one.",
                config.name,
                len(matches),
                config.kpi,
                matches[0][0],
            )
        return matches[0]
