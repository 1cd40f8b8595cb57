"""EWMA control chart with a slowly adapting in-control baseline."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from detectors._robust import CONSTANT_SCALE_RELATIVE, robust_scale
from detectors.base import BaseDetector, Constraint, FloatArray, Interval, RawScores

# Baseline updates use the value clipped to this many sigmas from the baseline
# mean, so that a single outlier cannot drag the baseline with it.
CLIP_SIGMAS = 3.0


class EwmaDetector(BaseDetector):
    """EWMA control chart.

    The chart statistic is ``z_t = smoothing * x_t + (1 - smoothing) * z_{t-1}``.
    Its in-control mean ``mu`` and the standard deviation ``sigma`` of single
    values are learned robustly (median and MAD) from the first
    ``min_samples`` finite samples, then updated with exponential weights
    over about ``baseline_window`` samples, using values clipped to three
    sigmas. The score is ``|z_t - mu| / sigma_z`` with
    ``sigma_z = sigma * sqrt(smoothing / (2 - smoothing))``, the asymptotic
    standard deviation of the chart statistic. ``lower`` and ``upper`` are the
    values of ``x_t`` that would keep the chart within ``threshold`` sigmas.

    Refit policy: the baseline is updated online with every finite sample, so
    nothing is refitted.

    Parameters
    ----------
    smoothing : float, default=0.3
        Weight of the newest value in the chart statistic, in (0, 1].
    threshold : float, default=3.5
        Control limit in sigmas of the chart statistic.
    baseline_window : int, default=200
        Span in samples of the exponential weights of the baseline;
        the weight of each new value is ``2 / (baseline_window + 1)``.
    min_samples : int, default=50
        Finite samples used to initialise the baseline before scoring starts.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "smoothing": [Interval(kind=Real, left=0, right=1, closed="right")],
        "threshold": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "baseline_window": [Interval(kind=Integral, left=2, right=None)],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self,
        *,
        smoothing: float = 0.3,
        threshold: float = 3.5,
        baseline_window: int = 200,
        min_samples: int = 50,
    ) -> None:
        self.smoothing = smoothing
        self.threshold = threshold
        self.baseline_window = baseline_window
        self.min_samples = min_samples

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.warmup_ = np.empty(0)
        self.mean_ = math.nan
        self.variance_ = math.nan
        self.statistic_ = math.nan
        self._score_finite(times, series)

    def _warm_up(self, series: FloatArray) -> int:
        """Collect values until the baseline can be initialised.

        Returns the number of values of ``series`` that were used.
        """
        needed = self.min_samples - len(self.warmup_)
        self.warmup_ = np.concatenate((self.warmup_, series[:needed]))
        if len(self.warmup_) >= self.min_samples:
            self.mean_ = float(np.median(self.warmup_))
            self.variance_ = robust_scale(self.warmup_, self.mean_) ** 2
            self.statistic_ = self.mean_

        return min(needed, len(series))

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        start = 0
        if math.isnan(self.mean_):
            start = self._warm_up(series)

        lam = float(self.smoothing)
        limit = float(self.threshold)
        alpha = 2.0 / (self.baseline_window + 1)
        chart_factor = math.sqrt(lam / (2.0 - lam))
        mean = self.mean_
        variance = self.variance_
        statistic = self.statistic_
        for index in range(start, n_samples):
            value = float(series[index])
            sigma = max(
                math.sqrt(variance), CONSTANT_SCALE_RELATIVE * max(1.0, abs(mean))
            )
            sigma_z = sigma * chart_factor
            carried = (1.0 - lam) * statistic
            lower[index] = (mean - limit * sigma_z - carried) / lam
            upper[index] = (mean + limit * sigma_z - carried) / lam
            statistic = lam * value + carried
            score[index] = abs(statistic - mean) / sigma_z
            ready[index] = True
            low_clip = mean - CLIP_SIGMAS * sigma
            high_clip = mean + CLIP_SIGMAS * sigma
            deviation = min(max(value, low_clip), high_clip) - mean
            mean += alpha * deviation
            variance = (1.0 - alpha) * (variance + alpha * deviation * deviation)

        self.mean_ = mean
        self.variance_ = variance
        self.statistic_ = statistic
        return RawScores(score=score, lower=lower, upper=upper, ready=ready)
