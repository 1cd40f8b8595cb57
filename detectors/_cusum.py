"""Two-sided tabular CUSUM for level shifts."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from detectors._robust import robust_scale
from detectors.base import BaseDetector, Constraint, FloatArray, Interval, RawScores


class CusumDetector(BaseDetector):
    """Two-sided tabular CUSUM on standardised values.

    With ``u = (x - mu) / sigma``, the upper and lower sums are
    ``S+ = max(0, S+ + u - drift)`` and ``S- = max(0, S- - u - drift)``, and
    the score is ``max(S+, S-)``. ``mu`` and ``sigma`` are the median and
    robust scale of a reference window of recent samples. When the score
    passes ``threshold``, the sample is flagged, both sums restart at 0 and
    the reference window restarts at that sample, so the new level becomes
    the reference once ``min_samples`` samples have been seen at it; until
    then samples get status ``insufficient_data``. ``lower`` and ``upper``
    are the values that would keep both sums at or below ``threshold``.

    Refit policy: ``mu`` and ``sigma`` are recomputed from the last
    ``window`` reference samples every ``refit_every`` finite samples and
    after each restart, not on every sample.

    Parameters
    ----------
    drift : float, default=0.5
        Allowance ``k`` in sigmas; shifts smaller than about ``2 * drift``
        sigmas are ignored.
    threshold : float, default=8.0
        Decision interval ``h`` in sigmas.
    window : int, default=200
        Maximum number of reference samples.
    refit_every : int, default=20
        Finite samples between two recomputations of ``mu`` and ``sigma``.
    min_samples : int, default=50
        Reference samples needed before scoring starts, and again after each
        detected shift. At most ``window``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "drift": [Interval(kind=Real, left=0, right=None)],
        "threshold": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "window": [Interval(kind=Integral, left=3, right=None)],
        "refit_every": [Interval(kind=Integral, left=1, right=None)],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self,
        *,
        drift: float = 0.5,
        threshold: float = 8.0,
        window: int = 200,
        refit_every: int = 20,
        min_samples: int = 50,
    ) -> None:
        self.drift = drift
        self.threshold = threshold
        self.window = window
        self.refit_every = refit_every
        self.min_samples = min_samples

    def _check_parameter_relations(self) -> None:
        if self.min_samples > self.window:
            self._raise_relation("min_samples", f"at most window={self.window}")

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.reference_: list[float] = []
        self.mean_ = math.nan
        self.scale_ = math.nan
        self.upper_sum_ = 0.0
        self.lower_sum_ = 0.0
        self._since_refit = 0
        self._score_finite(times, series)

    def _refit(self) -> None:
        del self.reference_[: -self.window]
        reference = np.asarray(self.reference_)
        self.mean_ = float(np.median(reference))
        self.scale_ = robust_scale(reference, self.mean_)
        self._since_refit = 0

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        drift = float(self.drift)
        limit = float(self.threshold)
        for index in range(n_samples):
            value = float(series[index])
            if len(self.reference_) < self.min_samples:
                self.reference_.append(value)
                if len(self.reference_) == self.min_samples:
                    self._refit()
                continue

            mean, scale = self.mean_, self.scale_
            upper[index] = mean + scale * (limit + drift - self.upper_sum_)
            lower[index] = mean - scale * (limit + drift - self.lower_sum_)
            standardised = (value - mean) / scale
            self.upper_sum_ = max(0.0, self.upper_sum_ + standardised - drift)
            self.lower_sum_ = max(0.0, self.lower_sum_ - standardised - drift)
            score[index] = max(self.upper_sum_, self.lower_sum_)
            ready[index] = True
            if score[index] > limit:
                self.upper_sum_ = 0.0
                self.lower_sum_ = 0.0
                self.reference_ = [value]
                continue

            self.reference_.append(value)
            self._since_refit += 1
            if self._since_refit >= self.refit_every:
                self._refit()

        return RawScores(score=score, lower=lower, upper=upper, ready=ready)
