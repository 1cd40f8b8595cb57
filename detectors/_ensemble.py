"""Robust z-scores of levels and of steps, debounced to report onsets."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd

from detectors._robust_z import RobustZDetector
from detectors.base import BaseDetector, Constraint, FloatArray, Interval, RawScores


class RobustEnsembleDetector(BaseDetector):
    """Combine a robust z-score of the level and of the step from the previous
    value, and report each anomaly once, at its onset.

    The raw score of a sample is the larger of its robust z-score against the
    ``window`` values before it and the robust z-score of its step
    ``x_t - x_{t-1}`` against the ``window`` steps before it. A sample keeps
    its raw score only when the raw score exceeds every raw score of the
    ``cooldown`` samples before it; otherwise its score is 0. So an anomaly
    that lasts produces one high score when it starts, and a stronger one
    later, instead of a run of alerts.

    Refit policy: none is needed, as in RobustZDetector; the windows move
    with every sample.

    Parameters
    ----------
    window : int, default=400
        Number of preceding values, and of preceding steps, in the windows.
    threshold : float, default=4.0
        Score above which a sample is flagged.
    cooldown : int, default=200
        Samples after a raw score during which lower raw scores are reported
        as 0.
    min_samples : int, default=50
        Finite samples needed before scoring starts. At most ``window``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "window": [Interval(kind=Integral, left=3, right=None)],
        "threshold": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "cooldown": [Interval(kind=Integral, left=0, right=None)],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self,
        *,
        window: int = 400,
        threshold: float = 4.0,
        cooldown: int = 200,
        min_samples: int = 50,
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.cooldown = cooldown
        self.min_samples = min_samples

    def _check_parameter_relations(self) -> None:
        if self.min_samples > self.window:
            self._raise_relation("min_samples", f"at most window={self.window}")

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        params = {"window": self.window, "min_samples": self.min_samples}
        self.level_ = RobustZDetector(threshold=self.threshold, **params)
        self.step_ = RobustZDetector(threshold=self.threshold, **params)
        self.level_.fit(times, series)
        self.step_.fit(times[1:], np.diff(series))
        self.last_value_ = float(series[-1]) if len(series) else np.nan
        self.recent_raw_ = np.empty(0)

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        level = self.level_._score_finite(times, series)
        steps = np.diff(np.concatenate(([self.last_value_], series)))
        has_step = np.isfinite(steps)
        step_score = np.zeros(len(series))
        if has_step.any():
            step = self.step_._score_finite(times[has_step], steps[has_step])
            step_score[has_step] = np.where(step.ready, step.score, 0.0)
        if len(series):
            self.last_value_ = float(series[-1])
        raw = np.where(level.ready, np.maximum(level.score, step_score), 0.0)
        score = self._keep_onsets(raw)
        return RawScores(
            score=score, lower=level.lower, upper=level.upper, ready=level.ready
        )

    def _keep_onsets(self, raw: FloatArray) -> FloatArray:
        """Zero every raw score that does not exceed the previous ``cooldown``."""
        if self.cooldown == 0:
            return raw
        combined = np.concatenate((self.recent_raw_, raw))
        previous_max = (
            pd.Series(combined)
            .shift(1)
            .rolling(self.cooldown, min_periods=1)
            .max()
            .to_numpy()[len(self.recent_raw_) :]
        )
        previous_max = np.nan_to_num(previous_max, nan=0.0)
        self.recent_raw_ = combined[-self.cooldown :]
        return np.where(raw > previous_max, raw, 0.0)
