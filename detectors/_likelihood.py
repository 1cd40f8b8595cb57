"""Surprise of levels, steps and seasonal changes, turned into a likelihood
score and reported once per anomaly."""

from __future__ import annotations

import math
from collections import deque
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from detectors.base import (
    BaseDetector,
    Constraint,
    FloatArray,
    Interval,
    Options,
    RawScores,
)

# Scale floor relative to max(1, |mean|), so that a change from a constant
# series has a large but finite z-score.
CONSTANT_SCALE_RELATIVE = 1e-9
# A value one season back counts only if it lies this fraction of a season
# or less before the exact time.
SEASON_TOLERANCE = 0.1
# Maximum number of values kept for the seasonal look-up. It bounds memory
# when many timestamps repeat.
SEASON_HISTORY_MAX = 100_000
# With likelihood="tail", the score is -log10(tail probability) / TAIL_DECADES,
# so a tail probability of 10**-TAIL_DECADES or less scores 1.
TAIL_DECADES = 10.0


class LikelihoodEnsembleDetector(BaseDetector):
    """Score how unlikely the recent surprise of a series is, and report each
    anomaly once, near its onset.

    Three stages run on every sample, in streaming order:

    1. Surprise. Three z-scores are taken: of the value, of the step
       ``x_t - x_{t-1}``, and of the seasonal change ``x_t - x_{t-P}``, where
       ``x_{t-P}`` is the last value at least ``season_seconds`` old. Each is
       taken against an exponentially weighted mean and variance with a
       memory of ``window`` samples (a plain running mean and variance until
       then). Each
       z-score is mapped to [0, 1] by ``min(1, max(0, z - z_floor) / z_span)``
       and the surprise is the mean of the three, so an anomaly seen by
       several views ranks above one seen by a single view. With
       ``second_season_seconds`` above 0, the change from the value one
       second season earlier (for example a week) is a fourth view with
       weight ``second_season_weight``. It joins the weighted mean only once
       ``min_samples`` such changes were seen, so until then the score is
       the same as without it.
    2. Likelihood. The surprise is averaged over the last ``short_window``
       samples. The mean and standard deviation of that average are tracked
       with a memory of ``likelihood_window`` samples, the deviation floored
       at ``min_sigma``. The distance ``d`` of the current average above the
       mean, in standard deviations, gives the score
       ``d / (d + distance_scale)``. The score falls as the normal tail
       probability of the average rises, but unlike a log-scaled tail
       probability it does not saturate, so strong anomalies stay ranked.
       With ``likelihood="tail"`` the layer is modelled on the published
       description of Numenta's anomaly likelihood instead; the log scale of
       the score below is krwatch's own choice. The mean and
       standard deviation are those of the single surprises (not their
       averages) over a sliding window of the last ``likelihood_window``
       samples, and the score is ``-log10(Q(d)) / 10``, capped at 1, where
       ``Q`` is the upper tail probability of the standard normal.
    3. Cooldown. After a score above ``threshold``, the scores of the next
       ``max(cooldown, cooldown_fraction * n)`` samples are reported as 0,
       where ``n`` is the number of values seen. A lasting anomaly therefore
       gives one alert when it starts, and a long series gets a longer quiet
       time, as NAB's anomaly windows grow with the series length.
       The score of the sample that starts an alert is raised to at least
       ``alert_floor``. The likelihood score usually crosses ``threshold``
       while it is still rising, so most alerts would otherwise score just
       above it, and an alert threshold a little higher than ``threshold``
       would drop them while the cooldown hides the higher scores after
       them. With the floor, any alert threshold between ``threshold`` and
       ``alert_floor`` gives the same alerts.

    Refit policy: none is needed; every statistic moves with each sample.

    Parameters
    ----------
    window : int, default=8000
        Memory, in samples, of the mean and variance of values, steps and
        seasonal changes.
    z_floor : float, default=2.7
        z-score at or below which a sample is not surprising at all.
    z_span : float, default=6.0
        z-score above ``z_floor`` at which the surprise reaches 1.
    short_window : int, default=8
        Number of recent surprises averaged.
    likelihood_window : int, default=1000
        Memory, in samples, of the mean and variance of the averaged surprise.
    min_sigma : float, default=0.01
        Smallest standard deviation assumed for the averaged surprise, so
        that a series that was never surprising does not divide by 0.
    distance_scale : float, default=6.0
        Distance, in standard deviations, that maps to a score of 0.5.
    cooldown : int, default=100
        Fewest samples after an alert whose scores are reported as 0.
    threshold : float, default=0.45
        Score, in (0, 1), above which a sample is flagged and the cooldown
        starts.
    min_samples : int, default=50
        Finite samples needed before scoring starts, and before each z-score
        is used.
    season_seconds : float, default=86400.0
        Season length in seconds; 0 turns the seasonal change off.
    cooldown_fraction : float, default=0.02
        Quiet time after an alert as a fraction of the values seen so far,
        when that is longer than ``cooldown``.
    alert_floor : float, default=0.5
        Least score reported for the sample that starts an alert; a value
        at or below ``threshold`` reports the likelihood score unchanged.
    second_season_seconds : float, default=0.0
        Length in seconds of a second season, such as 604800 for a week.
        The default of 0 turns the fourth view off.
    second_season_weight : float, default=0.3
        Weight of the second seasonal change in the mean surprise, relative
        to a weight of 1 for each of the other three views.
    likelihood : {"distance", "tail"}, default="distance"
        Likelihood layer: the distance of the average surprise from the
        moments of earlier averages, or the normal tail probability of the
        average under a sliding-window fit of single surprises.
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
        "season_seconds": [Interval(kind=Real, left=0, right=None)],
        "cooldown_fraction": [Interval(kind=Real, left=0, right=1)],
        "alert_floor": [Interval(kind=Real, left=0, right=1)],
        "second_season_seconds": [Interval(kind=Real, left=0, right=None)],
        "second_season_weight": [Interval(kind=Real, left=0, right=None)],
        "likelihood": [Options(("distance", "tail"))],
    }

    def __init__(
        self,
        *,
        window: int = 8000,
        z_floor: float = 2.7,
        z_span: float = 6.0,
        short_window: int = 8,
        likelihood_window: int = 1000,
        min_sigma: float = 0.01,
        distance_scale: float = 6.0,
        cooldown: int = 100,
        threshold: float = 0.45,
        min_samples: int = 50,
        season_seconds: float = 86_400.0,
        cooldown_fraction: float = 0.02,
        alert_floor: float = 0.5,
        second_season_seconds: float = 0.0,
        second_season_weight: float = 0.3,
        likelihood: str = "distance",
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
        self.season_seconds = season_seconds
        self.cooldown_fraction = cooldown_fraction
        self.alert_floor = alert_floor
        self.second_season_seconds = second_season_seconds
        self.second_season_weight = second_season_weight
        self.likelihood = likelihood

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.values_ = _RunningMoments()
        self.steps_ = _RunningMoments()
        self.last_value_ = math.nan
        self.season_ = _SeasonalChange(self.season_seconds, replace_surprising=True)
        # With a weekly second season, storing surprising values unchanged
        # scored 75.6 on half A of NAB (standard), against 71.2 when they
        # were replaced.
        self.second_season_ = _SeasonalChange(
            self.second_season_seconds, replace_surprising=False
        )
        self.recent_surprise_: deque[float] = deque(maxlen=self.short_window)
        self.averages_ = _RunningMoments()
        self.surprise_window_ = _SlidingMoments(self.likelihood_window)
        self.quiet_left_ = 0
        self._score_finite(times, series)

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        for index, (time, value) in enumerate(
            zip(times.tolist(), series.tolist(), strict=True)
        ):
            result = self._score_one(time, value)
            if result is None:
                continue
            score[index], lower[index], upper[index] = result
            ready[index] = True

        return RawScores(score=score, lower=lower, upper=upper, ready=ready)

    def _normalise(self, score: FloatArray) -> FloatArray:
        """Return the score unchanged, because it is already in [0, 1]."""
        return score

    def _score_one(
        self, time: float, value: float
    ) -> tuple[float, float, float] | None:
        """Update the state with one finite value and return its score and
        band, or None while the history is too short."""
        mean_before = self.values_.mean
        value_z, value_sigma = self.values_.z_then_update(
            value, self.window, self.min_samples
        )
        step_z = 0.0
        if not math.isnan(self.last_value_):
            step = value - self.last_value_
            step_z, _ = self.steps_.z_then_update(step, self.window, self.min_samples)
        self.last_value_ = value
        seasonal_z = self.season_.z_then_update(
            time, value, self.window, self.min_samples
        )
        second_z = self.second_season_.z_then_update(
            time, value, self.window, self.min_samples
        )
        surprising = max(value_z, step_z, seasonal_z) > self.z_floor
        self.season_.remember(time, value, surprising)
        self.second_season_.remember(time, value, surprising)
        if self.values_.count <= self.min_samples:
            return None

        total = (
            self._surprise(value_z)
            + self._surprise(step_z)
            + self._surprise(seasonal_z)
        )
        weight = 3.0
        if self.second_season_.moments.count >= self.min_samples:
            total += self.second_season_weight * self._surprise(second_z)
            weight += self.second_season_weight
        surprise = total / weight
        self.recent_surprise_.append(surprise)
        average = sum(self.recent_surprise_) / len(self.recent_surprise_)
        if self.likelihood == "tail":
            raw = self._tail_score(surprise, average)
        else:
            raw = self._likelihood_score(average)
        band = (self.z_floor + self.z_span) * value_sigma
        return self._keep_onset(raw), mean_before - band, mean_before + band

    def _surprise(self, z_score: float) -> float:
        """Map a z-score to [0, 1], 0 at or below ``z_floor``."""
        return min(1.0, max(0.0, z_score - self.z_floor) / self.z_span)

    def _likelihood_score(self, average: float) -> float:
        """Map ``average`` to [0, 1] by its distance above the mean of the
        earlier averages, in standard deviations, then add it to their moments."""
        moments = self.averages_
        sigma = max(math.sqrt(moments.var), self.min_sigma)
        distance = 0.0
        if moments.count:
            distance = max(0.0, (average - moments.mean) / sigma)
        moments.update(average, self.likelihood_window)
        return distance / (distance + self.distance_scale)

    def _tail_score(self, surprise: float, average: float) -> float:
        """Map ``average`` to [0, 1] by its normal tail probability under the
        moments of the earlier single surprises, then add ``surprise`` to
        them."""
        window = self.surprise_window_
        score = 0.0
        if window.count:
            sigma = max(math.sqrt(window.var), self.min_sigma)
            distance = (average - window.mean) / sigma
            tail = 0.5 * math.erfc(distance / math.sqrt(2.0))
            # erfc underflows to 0 beyond a distance of about 38.
            score = 1.0 if tail <= 0.0 else -math.log10(tail) / TAIL_DECADES
        window.update(surprise)
        return min(1.0, max(0.0, score))

    def _keep_onset(self, raw: float) -> float:
        """Return ``raw``, raised to ``alert_floor`` when it starts an alert,
        or 0 during the quiet time after an alert."""
        if self.quiet_left_ > 0:
            self.quiet_left_ -= 1
            return 0.0
        if raw > self.threshold:
            self.quiet_left_ = max(
                self.cooldown, int(self.cooldown_fraction * self.values_.count)
            )
            return max(raw, self.alert_floor)
        return raw


class _SeasonalChange:
    """Change of a value from the value one season earlier, with the moments
    of that change.

    The season is off when ``season_seconds`` is 0, and every z-score is
    then 0. With ``replace_surprising``, a surprising value is stored as the
    value one season before it, so that a spike does not come back as a dip
    one season later.
    """

    def __init__(self, season_seconds: float, *, replace_surprising: bool) -> None:
        self.season_seconds = season_seconds
        self.replace_surprising = replace_surprising
        self.moments = _RunningMoments()
        # (timestamp, value) pairs reaching back just over one season.
        self.history: deque[tuple[float, float]] = deque(maxlen=SEASON_HISTORY_MAX)
        self.earlier = math.nan

    def z_then_update(
        self, time: float, value: float, window: int, min_count: int
    ) -> float:
        """Return the z-score of the change from the value one season before
        ``time``, then add the change to the moments.

        The z-score is 0 when no value lies within ``SEASON_TOLERANCE`` of a
        season before that time.
        """
        self.earlier = self._earlier_value(time)
        if math.isnan(self.earlier):
            return 0.0

        z_score, _ = self.moments.z_then_update(value - self.earlier, window, min_count)
        return z_score

    def remember(self, time: float, value: float, surprising: bool) -> None:
        """Store ``value`` for the look-up one season later."""
        if self.season_seconds == 0:
            return

        replace = (
            self.replace_surprising and surprising and not math.isnan(self.earlier)
        )
        self.history.append((time, self.earlier if replace else value))

    def _earlier_value(self, time: float) -> float:
        history = self.history
        if self.season_seconds == 0 or not history:
            return math.nan
        season_start = time - self.season_seconds
        while len(history) > 1 and history[1][0] <= season_start:
            history.popleft()
        past_time, earlier = history[0]
        if (
            past_time > season_start
            or past_time < season_start - SEASON_TOLERANCE * self.season_seconds
        ):
            return math.nan

        return earlier


class _SlidingMoments:
    """Mean and variance of the last ``window`` values.

    The sums are recomputed from the kept values after as many updates as
    there are kept values, so rounding errors of the running sums do not
    build up.
    """

    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.total_squares = 0.0
        self.updates_since_sum = 0

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return self.total / len(self.values) if self.values else 0.0

    @property
    def var(self) -> float:
        count = len(self.values)
        if count < 2:
            return 0.0

        mean = self.total / count
        return max(0.0, (self.total_squares - count * mean * mean) / (count - 1))

    def update(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            dropped = self.values[0]
            self.total -= dropped
            self.total_squares -= dropped * dropped
        self.values.append(value)
        self.total += value
        self.total_squares += value * value
        self.updates_since_sum += 1
        if self.updates_since_sum >= len(self.values):
            self.total = math.fsum(self.values)
            self.total_squares = math.fsum(item * item for item in self.values)
            self.updates_since_sum = 0


class _RunningMoments:
    """Mean and variance, exponentially weighted with a memory of ``window``
    samples, and a plain running mean and variance over the first ones."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.var = 0.0

    def update(self, value: float, window: int) -> None:
        self.count += 1
        weight = max(2.0 / (window + 1), 1.0 / self.count)
        delta = value - self.mean
        mean = self.mean + weight * delta
        var = (1.0 - weight) * (self.var + weight * delta * delta)
        if math.isfinite(mean) and math.isfinite(var):
            self.mean, self.var = mean, var

    def z_then_update(
        self, value: float, window: int, min_count: int
    ) -> tuple[float, float]:
        """Return the z-score of ``value`` against the moments before it and
        the scale used, then add ``value`` to the moments.

        The z-score is 0 while the moments contain fewer than ``min_count``
        values.
        """
        sigma = max(
            math.sqrt(self.var), CONSTANT_SCALE_RELATIVE * max(1.0, abs(self.mean))
        )
        z_score = abs(value - self.mean) / sigma if self.count >= min_count else 0.0
        self.update(value, window)
        if not math.isfinite(z_score):
            z_score = 0.0
        return z_score, sigma
