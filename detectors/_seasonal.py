"""Seasonal baseline with daily or weekly profiles and robust residuals."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd

from detectors._robust import robust_scale, rolling_median_scale
from detectors.base import (
    BaseDetector,
    Constraint,
    FloatArray,
    Interval,
    Options,
    RawScores,
)

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS
SEASON_PERIODS_SECONDS = {"none": 0.0, "daily": DAY_SECONDS, "weekly": WEEK_SECONDS}
# A profile is estimated only from a history that spans this many periods.
MIN_PERIODS_FOR_PROFILE = 2.0
# In "auto" mode a longer period is chosen only when it shrinks the robust
# scale of the residuals by more than this fraction, to avoid overfitting.
MIN_SCALE_REDUCTION = 0.1
# Upper bound on the kept history, whatever history_seconds is set to, so that
# a refit stays cheap on dense series.
MAX_HISTORY_SAMPLES = 20_000


@dataclass(frozen=True, kw_only=True)
class _Profile:
    season: str
    period_seconds: float
    bin_seconds: float
    offsets: FloatArray
    scale: float

    def offset_at(self, times: FloatArray) -> FloatArray:
        if self.period_seconds == 0.0:
            return np.zeros(len(times))
        bins = np.floor(np.mod(times, self.period_seconds) / self.bin_seconds)
        return self.offsets[bins.astype(np.int64)]


class SeasonalMadDetector(BaseDetector):
    """Score residuals from a level plus a daily or weekly profile.

    A fit detrends the history with a centred rolling median one period long,
    takes the median of the detrended values in each phase bin of the period
    as the profile, and measures the robust scale (1.4826 * MAD) of the
    one-step residuals. When scoring, the expected value of a sample is the
    median of the last ``level_window`` deseasonalised values before it plus
    the profile at its phase, and the score is ``|x - expected| / scale``.
    ``lower`` and ``upper`` are ``expected -+ threshold * scale``. Phases are
    taken from the timestamps, so gaps and irregular sampling keep the
    profile aligned; times of day are in UTC.

    With ``season="auto"`` the profile is chosen by what the history supports:
    daily needs two days of history and weekly two weeks, and the longer
    period must shrink the residual scale by more than 10% over the shorter
    one. A forced ``"daily"`` or ``"weekly"`` season reports
    ``insufficient_data`` until the history spans two periods.

    Refit policy: the profile and the scale are refitted on the kept history
    once ``min_samples`` samples are available and then whenever
    ``refit_seconds`` have passed since the last fit. The level moves with
    every sample.

    Parameters
    ----------
    season : {"auto", "daily", "weekly", "none"}, default="auto"
        Which profile to use.
    threshold : float, default=4.0
        Score above which a sample is flagged.
    bin_seconds : float, default=3600.0
        Width of a phase bin of the profile, in seconds.
    level_window : int, default=24
        Number of preceding deseasonalised samples whose median is the level.
    history_seconds : float, default=2419200.0
        Span of history kept for refits (28 days); at most 20,000 samples
        are kept.
    refit_seconds : float, default=86400.0
        Time between two refits, in seconds.
    min_samples : int, default=48
        Finite samples needed before the first fit.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "season": [Options(("auto", "daily", "weekly", "none"))],
        "threshold": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "bin_seconds": [Interval(kind=Real, left=1, right=DAY_SECONDS)],
        "level_window": [Interval(kind=Integral, left=1, right=None)],
        "history_seconds": [Interval(kind=Real, left=3600, right=None)],
        "refit_seconds": [Interval(kind=Real, left=0, right=None, closed="neither")],
        "min_samples": [Interval(kind=Integral, left=3, right=None)],
    }

    def __init__(
        self,
        *,
        season: str = "auto",
        threshold: float = 4.0,
        bin_seconds: float = 3600.0,
        level_window: int = 24,
        history_seconds: float = 28 * DAY_SECONDS,
        refit_seconds: float = 86_400.0,
        min_samples: int = 48,
    ) -> None:
        self.season = season
        self.threshold = threshold
        self.bin_seconds = bin_seconds
        self.level_window = level_window
        self.history_seconds = history_seconds
        self.refit_seconds = refit_seconds
        self.min_samples = min_samples

    @property
    def season_(self) -> str | None:
        """Season of the current profile, or None before a successful fit."""
        return None if self.profile_ is None else self.profile_.season

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        self.history_times_ = np.empty(0)
        self.history_values_ = np.empty(0)
        self.profile_: _Profile | None = None
        self.fitted_at_: float | None = None
        self._append_history(times, series)
        if len(series) >= self.min_samples:
            self._refit(float(times[-1]))

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        n_samples = len(series)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        start = 0
        while start < n_samples:
            if self._refit_due(float(times[start])):
                self._refit(float(times[start]))
            stop = self._next_refit_index(times, start)
            if self.profile_ is not None:
                segment = slice(start, stop)
                self._score_segment(
                    self.profile_,
                    times[segment],
                    series[segment],
                    score,
                    lower,
                    upper,
                    ready,
                    start,
                )
            self._append_history(times[start:stop], series[start:stop])
            start = stop

        return RawScores(score=score, lower=lower, upper=upper, ready=ready)

    def _score_segment(
        self,
        profile: _Profile,
        times: FloatArray,
        series: FloatArray,
        score: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
        ready: FloatArray,
        offset: int,
    ) -> None:
        history = self.history_values_[-self.level_window :]
        history_times = self.history_times_[-self.level_window :]
        deseasonalised_history = history - profile.offset_at(history_times)
        seasonal = profile.offset_at(times)
        level, _, count = rolling_median_scale(
            deseasonalised_history, series - seasonal, self.level_window
        )
        expected = level + seasonal
        band = self.threshold * profile.scale
        segment = slice(offset, offset + len(series))
        valid = count >= 1
        score[segment] = np.where(valid, np.abs(series - expected) / profile.scale, 0.0)
        lower[segment] = expected - band
        upper[segment] = expected + band
        ready[segment] = valid

    def _refit_due(self, now: float) -> bool:
        if len(self.history_values_) < self.min_samples:
            return False
        if self.fitted_at_ is None:
            return True

        return now >= self.fitted_at_ + self.refit_seconds

    def _next_refit_index(self, times: FloatArray, start: int) -> int:
        """Index after ``start`` of the first sample that triggers a refit."""
        n_samples = len(times)
        if self.fitted_at_ is None:
            missing = self.min_samples - len(self.history_values_)
            return min(n_samples, start + max(1, missing))
        due = times[start + 1 :] >= self.fitted_at_ + self.refit_seconds
        if not due.any():
            return n_samples

        return start + 1 + int(np.argmax(due))

    def _append_history(self, times: FloatArray, series: FloatArray) -> None:
        all_times = np.concatenate((self.history_times_, times))
        all_values = np.concatenate((self.history_values_, series))
        if len(all_times):
            keep = all_times > all_times[-1] - self.history_seconds
            keep[: max(0, len(keep) - MAX_HISTORY_SAMPLES)] = False
            all_times = all_times[keep]
            all_values = all_values[keep]
        self.history_times_ = all_times
        self.history_values_ = all_values

    def _refit(self, now: float) -> None:
        self.fitted_at_ = now
        times = self.history_times_
        values = self.history_values_
        candidates = self._candidate_seasons(times)
        profiles = [self._fit_profile(times, values, season) for season in candidates]
        chosen: _Profile | None = None
        for profile in profiles:
            if (
                chosen is None
                or profile.scale < (1 - MIN_SCALE_REDUCTION) * chosen.scale
            ):
                chosen = profile
        if chosen is None:
            logger.debug(
                "Season %r needs %g periods of history; %g seconds are kept.",
                self.season,
                MIN_PERIODS_FOR_PROFILE,
                float(times[-1] - times[0]) if len(times) else 0.0,
            )
        self.profile_ = chosen

    def _candidate_seasons(self, times: FloatArray) -> list[str]:
        span = float(times[-1] - times[0]) if len(times) else 0.0
        if self.season == "none":
            return ["none"]
        if self.season != "auto":
            period = SEASON_PERIODS_SECONDS[self.season]
            return [self.season] if span >= MIN_PERIODS_FOR_PROFILE * period else []

        return [
            season
            for season, period in SEASON_PERIODS_SECONDS.items()
            if span >= MIN_PERIODS_FOR_PROFILE * period
        ]

    def _fit_profile(
        self, times: FloatArray, values: FloatArray, season: str
    ) -> _Profile:
        period = SEASON_PERIODS_SECONDS[season]
        if period == 0.0:
            offsets = np.zeros(1)
        else:
            offsets = self._bin_medians(times, values, period)
        profile = _Profile(
            season=season,
            period_seconds=period,
            bin_seconds=float(self.bin_seconds),
            offsets=offsets,
            scale=1.0,
        )
        deseasonalised = values - profile.offset_at(times)
        level, _, count = rolling_median_scale(
            np.empty(0), deseasonalised, self.level_window
        )
        residuals = (deseasonalised - level)[count >= 1]
        scale = robust_scale(residuals) if len(residuals) else math.inf
        return _Profile(
            season=season,
            period_seconds=period,
            bin_seconds=float(self.bin_seconds),
            offsets=offsets,
            scale=scale,
        )

    def _bin_medians(
        self, times: FloatArray, values: FloatArray, period: float
    ) -> FloatArray:
        spacing = np.diff(times)
        spacing = spacing[spacing > 0]
        step = float(np.median(spacing)) if len(spacing) else period
        trend_window = int(max(3, min(len(values), round(period / step))))
        trend = (
            pd.Series(values)
            .rolling(trend_window, center=True, min_periods=1)
            .median()
            .to_numpy()
        )
        n_bins = int(math.ceil(period / self.bin_seconds))
        bins = np.floor(np.mod(times, period) / self.bin_seconds).astype(np.int64)
        medians = pd.Series(values - trend).groupby(bins).median()
        offsets = np.zeros(n_bins)
        offsets[medians.index.to_numpy()] = medians.to_numpy()
        return offsets
