"""The evaluation context that rule expressions read during one cycle."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.keyresults import KeyResultStatus
from monitor.series import Labels
from monitor.windows import WindowStore
from rules import expr


@dataclass(frozen=True, kw_only=True)
class KeyResultFigures:
    """The figures of one key result that expressions can read."""

    progress: float
    expected_progress: float
    forecast: float
    attainment_probability: float


class CycleContext:
    """Series windows and key result statuses as seen at ``now``.

    Parameters
    ----------
    now : float
        Evaluation time, epoch seconds.
    windows : WindowStore
    key_results : mapping of str to KeyResultStatus
    stale_after : mapping of str to float, optional
        Seconds after which a KPI's series counts as stale, by KPI name. A KPI
        without an entry never goes stale.
    anomaly_scores : mapping of (str, Labels) to float, optional
        The latest anomaly score in [0, 1] of each (KPI, series labels), as
        the anomaly rules computed it; 0.5 is the detector's threshold.
        ``anomaly_score(kpi(...))`` reads these, and a series without a score
        gets NaN.
    """

    def __init__(
        self,
        *,
        now: float,
        windows: WindowStore,
        key_results: Mapping[str, KeyResultStatus],
        stale_after: Mapping[str, float] | None = None,
        anomaly_scores: Mapping[tuple[str, Labels], float] | None = None,
    ) -> None:
        self.now = now
        self._windows = windows
        self._key_results = key_results
        self._stale_after = stale_after or {}
        self._anomaly_scores = {} if anomaly_scores is None else anomaly_scores
        self._cache: dict[str, list[expr.SeriesWindow]] = {}

    def series(self, kpi: str) -> list[expr.SeriesWindow]:
        """Return the windows of every series of ``kpi``, read once per cycle."""
        cached = self._cache.get(kpi)
        if cached is None:
            cached = [
                expr.SeriesWindow(
                    kpi=key.kpi, labels=key.labels, timestamps=times, values=values
                )
                for key, times, values in self._windows.snapshot(kpi)
            ]
            self._cache[kpi] = cached
        return cached

    def select(self, kpi: str, matchers: Sequence[Any]) -> Sequence[expr.SeriesWindow]:
        return [
            window
            for window in self.series(kpi)
            if all(matcher.matches(window.labels) for matcher in matchers)
        ]

    def key_result(self, name: str) -> KeyResultFigures | None:
        status = self._key_results.get(name)
        if status is None:
            return None

        return KeyResultFigures(
            progress=status.progress,
            expected_progress=status.expected_progress,
            forecast=status.forecast.forecast,
            attainment_probability=status.attainment_probability,
        )

    def anomaly_score(self, kpi: str, labels: Labels) -> float:
        return self._anomaly_scores.get((kpi, labels), float("nan"))

    def is_fresh(self, window: expr.SeriesWindow) -> bool:
        """Return whether the newest sample at or before ``now`` is recent enough."""
        timestamps = window.timestamps
        index = int(np.searchsorted(timestamps, self.now, side="right")) - 1
        if index < 0:
            return False

        limit = self._stale_after.get(window.kpi, math.inf)
        return bool(self.now - timestamps[index] <= limit)

    def has_fresh_data(self, expression: Any) -> bool:
        """Return whether any KPI the expression reads has a fresh series."""
        kpis = expr.referenced_kpis(expression)
        if not kpis:
            return True

        return any(self.is_fresh(window) for kpi in kpis for window in self.series(kpi))
