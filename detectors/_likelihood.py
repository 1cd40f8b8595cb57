"""Surprise scores of levels and steps, turned into a likelihood of anomaly."""

from __future__ import annotations

import math
from collections import deque
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from detectors.base import BaseDetector, Constraint, FloatArray, Interval, RawScores

# Smallest tail probability told apart; the log-scaled score is 1 at or below it.
TAIL_FLOOR = 1e-10
# Scale floor relative to max(1, |mean|), so that a change from a constant
# series has a large but finite z-score.
CONSTANT_SCALE_RELATIVE = 1e-9


class LikelihoodEnsembleDetector(BaseDetector):
    """Score how unlikely the recent surprise of a series is, and report each
    anomaly once, at its onset.

    Three stages run on every sample, in streaming order:

    1. Surprise. The z-scores of the value and of the step ``x_t - x_{t-1}``
       are taken against exponentially weighted means and variances whose
       memory is ``window`` samples (a plain running mean until then). The
       larger z-score is mapped to a surprise in [0, 1]:
       ``min(1, max(0, z - z_floor) / z_span)``.
    2. Likelihood. The surprise is averaged over the last ``short_window``
       samples. The mean and variance of that average are tracked over
       ``likelihood_window`` samples. The tail probability ``q`` of the
       current average under a normal law with those moments gives the score
       ``log(q + 1e-10) / log(1e-10)``: 0 for an ordinary average, 1 for an
       average more than about 6.4 standard deviations above the mean.
    3. Onsets. A score counts only if it is higher than every score of the
       ``cooldown`` samples before it; otherwise it is reported as 0. A
       lasting anomaly therefore gives one high score when it starts.

    Refit policy: none is needed; every statistic moves with each sample.

    Parameters
    ----------
    window : int, default=1000
        Memory, in samples, of the mean and variance of values and steps.
    z_floor : float, default=3.0
        z-score at or below which a sample is not surprising at all.
    z_span : float, default=6.0
        z-score above ``z_floor`` at which the surprise reaches 1.
    short_window : int, default=5
        Number of recent surprises averaged.
    likelihood_window : int, default=1000
        Memory, in samples, of the mean and variance of the averaged surprise.
    min_sigma : float, default=0.01
        Smallest standard deviation assumed for the averaged surprise, so
        that a series that was never surprising does not divide by 0.
    cooldown : int, default=100
        Samples after a score during which lower or equal scores are
        reported as 0.
    threshold : float, default=0.5
        Score, in [0, 1], above which a sample is flagged.
    min_samples : int, default=50
        Finite samples needed before scoring starts.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "window": [Interval(kind=Integral, left=3, right=None)],
        "z_floor": [Interval(kind=Real, left=0, right=None)],
        "z_span": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "short_window": [Interval(kind=Integral, left=1, right=None)],
        "likelihood_window": [Interval(kind=Integral, left=3, right=None)],
        "min_sigma": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "distance_scale": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "cooldown": [Interval(kind=Integral, left=0, right=None)],
        "threshold": [Interval(kind=Real, left=0, right=1, closed="neither")],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self,
        *,
        window: int = 1000,
        z_floor: float = 3.0,
        z_span: float = 6.0,
        short_window: int = 5,
        likelihood_window: int = 1000,
        min_sigma: float = 0.01,
        distance_scale: float = 6.0,
        cooldown: int = 100,
        threshold: float = 0.5,
        min_samples: int = 50,
    ) -> None:
        self.window = window
        self.z_floor = z_floor
        self.z_span = z_span
        self.short_window = short_window
        self.likelihood_window = likelihood_window
        self.min_sigma = min_sigma
        self.distance_scale = distance_scale
        self.cooldown = cooldown
        self.threshold = threshold
        self.min_samples = min_samples

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.n_values_ = 0
        self.value_mean_ = 0.0
        self.value_var_ = 0.0
        self.last_value_ = math.nan
        self.n_steps_ = 0
        self.step_mean_ = 0.0
        self.step_var_ = 0.0
        self.recent_surprise_: deque[float] = deque(maxlen=self.short_window)
        self.n_averages_ = 0
        self.average_mean_ = 0.0
        self.average_var_ = 0.0
        self.quiet_left_ = 0
        self._score_finite(times, series)

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        for index, value in enumerate(series.tolist()):
            result = self._score_one(value)
            if result is None:
                continue
            score[index], lower[index], upper[index] = result
            ready[index] = True

        return RawScores(score=score, lower=lower, upper=upper, ready=ready)

    def _normalise(self, score: FloatArray) -> FloatArray:
        """The score is already a log-scaled probability in [0, 1]."""
        return score

    def _score_one(self, value: float) -> tuple[float, float, float] | None:
        """Update the state with one finite value; return its score and band,
        or None while the history is too short."""
        value_z, value_sigma = self._z_and_update(value, "value")
        mean_before = self._last_mean
        step_z = 0.0
        if not math.isnan(self.last_value_):
            step_z, _ = self._z_and_update(value - self.last_value_, "step")
        self.last_value_ = value
        if self.n_values_ <= self.min_samples:
            return None

        z_score = max(value_z, step_z)
        surprise = min(1.0, max(0.0, z_score - self.z_floor) / self.z_span)
        self.recent_surprise_.append(surprise)
        average = sum(self.recent_surprise_) / len(self.recent_surprise_)
        raw = self._log_tail(average)
        band = (self.z_floor + self.z_span) * value_sigma
        return self._keep_onset(raw), mean_before - band, mean_before + band

    def _z_and_update(self, value: float, kind: str) -> tuple[float, float]:
        """Return the z-score of ``value`` against the statistics of ``kind``
        before it, and the scale used; then move the statistics."""
        if kind == "value":
            count, mean, var = self.n_values_, self.value_mean_, self.value_var_
        else:
            count, mean, var = self.n_steps_, self.step_mean_, self.step_var_
        sigma = max(math.sqrt(var), CONSTANT_SCALE_RELATIVE * max(1.0, abs(mean)))
        z_score = abs(value - mean) / sigma if count else 0.0
        count += 1
        weight = max(2.0 / (self.window + 1), 1.0 / count)
        delta = value - mean
        mean += weight * delta
        var = (1.0 - weight) * (var + weight * delta * delta)
        if kind == "value":
            self._last_mean = self.value_mean_
            self.n_values_, self.value_mean_, self.value_var_ = count, mean, var
        else:
            self.n_steps_, self.step_mean_, self.step_var_ = count, mean, var
        return z_score, sigma

    def _log_tail(self, average: float) -> float:
        """Log-scaled tail probability of ``average``; then move its moments."""
        sigma = max(math.sqrt(self.average_var_), self.min_sigma)
        distance = 0.0
        if self.n_averages_:
            distance = max(0.0, (average - self.average_mean_) / sigma)
        self.n_averages_ += 1
        weight = max(2.0 / (self.likelihood_window + 1), 1.0 / self.n_averages_)
        delta = average - self.average_mean_
        self.average_mean_ += weight * delta
        self.average_var_ = (1.0 - weight) * (self.average_var_ + weight * delta**2)
        return distance / (distance + self.distance_scale)

    def _keep_onset(self, raw: float) -> float:
        """Return ``raw`` unless a score above the threshold came less than
        ``cooldown`` samples before; then return 0."""
        if self.quiet_left_ > 0:
            self.quiet_left_ -= 1
            return 0.0
        if raw > self.threshold:
            self.quiet_left_ = self.cooldown
        return raw
