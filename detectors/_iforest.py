"""Isolation forest on windows of recent values."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from detectors._robust import robust_scale
from detectors.base import (
    BaseDetector,
    Constraint,
    FloatArray,
    Interval,
    OfType,
    RawScores,
)

# Distance beyond the training range of a feature, in robust scales of that
# feature, that is still treated as ordinary.
RANGE_SLACK = 2.0
# Percentiles of the training values reported as the expected band.
BAND_PERCENTILES = (1.0, 99.0)


class IsolationForestDetector(BaseDetector):
    """Score windows of recent values with scikit-learn's IsolationForest.

    The features of a sample summarise the ``window`` finite values that end
    with it, after subtracting the median of the training values and dividing
    by their robust scale: the newest value, its step from the previous one,
    its distance from the window mean, and the window's standard deviation.
    The isolation score ``s`` is scikit-learn's ``-score_samples``, which lies
    in (0, 1]: about 0.5 for ordinary windows and close to 1 for windows that
    are isolated quickly. A forest gives a window beyond the training range
    the same depth as the most extreme training window, so the score also
    grows with the distance ``e`` by which a feature lies more than two
    robust scales outside its training range:
    ``score = s + (1 - s) * (1 - exp(-e))``. ``anomaly_score`` is the same
    number. ``lower`` and ``upper`` are the 1st and 99th percentiles of the
    training values, because a forest has no band of its own.

    Refit policy: the forest is fitted on the windows of the last
    ``history`` finite samples once ``min_samples`` are available, and refitted
    every ``refit_every`` finite samples after that. Between refits each
    batch is scored in one vectorised call.

    Parameters
    ----------
    window : int, default=8
        Number of values in each feature vector.
    threshold : float, default=0.8
        Score above which a sample is flagged.
    n_estimators : int, default=100
        Number of trees.
    max_samples : int, default=256
        Windows drawn to build each tree.
    history : int, default=2000
        Finite samples the forest is trained on.
    refit_every : int, default=500
        Finite samples between two refits.
    min_samples : int, default=100
        Finite samples needed before the first fit; at least ``window + 1``.
    random_state : int or None, default=0
        Seed of the forest, for reproducible scores.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "window": [Interval(kind=Integral, left=2, right=None)],
        "threshold": [Interval(kind=Real, left=0, right=1, closed="neither")],
        "n_estimators": [Interval(kind=Integral, left=1, right=None)],
        "max_samples": [Interval(kind=Integral, left=2, right=None)],
        "history": [Interval(kind=Integral, left=2, right=None)],
        "refit_every": [Interval(kind=Integral, left=1, right=None)],
        "min_samples": [Interval(kind=Integral, left=2, right=None)],
        "random_state": [
            Interval(kind=Integral, left=0, right=None),
            OfType(type(None)),
        ],
    }

    def __init__(
        self,
        *,
        window: int = 8,
        threshold: float = 0.8,
        n_estimators: int = 100,
        max_samples: int = 256,
        history: int = 2000,
        refit_every: int = 500,
        min_samples: int = 100,
        random_state: int | None = 0,
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.history = history
        self.refit_every = refit_every
        self.min_samples = min_samples
        self.random_state = random_state

    def _check_parameter_relations(self) -> None:
        if self.min_samples <= self.window:
            self._raise_relation("min_samples", f"more than window={self.window}")
        if self.history < self.min_samples:
            self._raise_relation("history", f"at least min_samples={self.min_samples}")

    def _normalise(self, score: FloatArray) -> FloatArray:
        return score

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.history_ = series[-self.history :].copy()
        self.forest_: Any = None
        self._since_refit = 0
        if len(self.history_) >= self.min_samples:
            self._refit()

    def _refit(self) -> None:
        values = self.history_
        self.center_ = float(np.median(values))
        self.scale_ = robust_scale(values, self.center_)
        features = self._features(values)
        # Imported here because scikit-learn takes seconds to import, and
        # every krwatch command loads this module through the registry.
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(features)),
            random_state=self.random_state,
        )
        self.forest_ = forest.fit(features)
        self.feature_min_ = features.min(axis=0)
        self.feature_max_ = features.max(axis=0)
        self.feature_scale_ = np.array(
            [robust_scale(column, float(np.median(column))) for column in features.T]
        )
        self.band_ = np.percentile(values, BAND_PERCENTILES)
        self._since_refit = 0

    def _features(self, values: FloatArray) -> FloatArray:
        """Summarise each window ending at a value of ``values``.

        The columns are the newest standardised value, its step from the one
        before, its distance from the window mean, and the window's standard
        deviation.
        """
        standardised = (values - self.center_) / self.scale_
        windows = sliding_window_view(standardised, self.window)
        newest = windows[:, -1]
        step = newest - windows[:, -2] if self.window > 1 else np.zeros(len(newest))
        return np.column_stack(
            (newest, step, newest - windows.mean(axis=1), windows.std(axis=1))
        )

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        start = 0
        while start < n_samples:
            if self.forest_ is None:
                stop = min(n_samples, start + self.min_samples - len(self.history_))
            else:
                stop = min(n_samples, start + self.refit_every - self._since_refit)
            stop = max(stop, start + 1)
            if self.forest_ is not None:
                self._score_segment(series, start, stop, score, lower, upper)
                ready[start:stop] = True
                self._since_refit += stop - start
            self.history_ = np.concatenate((self.history_, series[start:stop]))
            self.history_ = self.history_[-self.history :]
            due = self.forest_ is None and len(self.history_) >= self.min_samples
            if due or self._since_refit >= self.refit_every:
                self._refit()
            start = stop

        return RawScores(score=score, lower=lower, upper=upper, ready=ready)

    def _score_segment(
        self,
        series: FloatArray,
        start: int,
        stop: int,
        score: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
    ) -> None:
        forest = self.forest_
        if forest is None:
            return
        context = self.history_[len(self.history_) - (self.window - 1) :]
        values = np.concatenate((context, series[start:stop]))
        features = self._features(values)
        isolation = -forest.score_samples(features)
        above = (features - self.feature_max_) / self.feature_scale_
        below = (self.feature_min_ - features) / self.feature_scale_
        excess = np.maximum(np.maximum(above, below).max(axis=1) - RANGE_SLACK, 0.0)
        score[start:stop] = isolation + (1.0 - isolation) * -np.expm1(-excess)
        lower[start:stop] = self.band_[0]
        upper[start:stop] = self.band_[1]
