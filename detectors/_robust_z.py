"""Robust z-score against a rolling median and MAD."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from detectors._robust import rolling_median_scale
from detectors.base import BaseDetector, Constraint, FloatArray, Interval, RawScores

MAX_SCORE = 1e12
"""Cap of the z-score, so a scale that underflows to a subnormal number
gives a huge but finite score."""


class RobustZDetector(BaseDetector):
    """Score each sample by its distance from the rolling median, in robust sigmas.

    The score of a sample is ``|x - median| / scale`` over the ``window``
    finite samples before it, where ``scale`` is 1.4826 times the median
    absolute deviation (MAD). When over half the window is one value the
    MAD is 0, and 1.2533 times the mean absolute deviation is used instead.

    Refit policy: none is needed. The median and MAD are recomputed for every
    sample from its trailing window, vectorised over each batch.

    Parameters
    ----------
    window : int, default=200
        Number of preceding finite samples in the rolling window.
    threshold : float, default=4.0
        Score above which a sample is flagged.
    min_samples : int, default=50
        Finite samples needed before scoring starts; earlier samples get
        status ``insufficient_data``. At most ``window``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "window": [Interval(kind=Integral, left=3, right=None)],
        "threshold": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self, *, window: int = 200, threshold: float = 4.0, min_samples: int = 50
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.min_samples = min_samples

    def _check_parameter_relations(self) -> None:
        if self.min_samples > self.window:
            self._raise_relation("min_samples", f"at most window={self.window}")

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.history_ = series[-self.window :].copy()

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        median, scale, count = rolling_median_scale(self.history_, series, self.window)
        ready = count >= self.min_samples
        with np.errstate(invalid="ignore", over="ignore"):
            score = np.minimum(np.abs(series - median) / scale, MAX_SCORE)
        band = self.threshold * scale
        self.history_ = np.concatenate((self.history_, series))[-self.window :]
        return RawScores(
            score=np.where(ready, score, 0.0),
            lower=np.where(ready, median - band, np.nan),
            upper=np.where(ready, median + band, np.nan),
            ready=ready,
        )
