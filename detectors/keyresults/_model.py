"""Damped additive trend exponential smoothing with seasonality and refits.

The model is fitted to the step values of one series. Seasonal factors are
estimated on detrended data and divided out. A level shift cuts the history
to the data after it. The smoothing parameters come from a small grid that
minimises the one-step squared error. All steps run in numpy and take
about a millisecond for a few hundred steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.keyresults._steps import DAY_SECONDS, HOUR_SECONDS

MIN_OBSERVED_STEPS = 4
"""Below this many observed steps there is no forecast."""
SHORT_HISTORY_STEPS = 9
"""Below this many observed steps the trend is left out (simple smoothing)."""

_ALPHAS = np.array([0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95])
_BETAS = np.array([0.02, 0.05, 0.1, 0.2])
_PHIS = np.array([0.8, 0.9, 0.95, 0.98])

_SEASON_STEPS = {DAY_SECONDS: 7, HOUR_SECONDS: 24}
"""Season length in steps: day of week for daily steps, hour of day for hourly."""
_SEASON_MIN_CYCLES = 3
_SEASON_MIN_F_STATISTIC = 4.0
"""F statistic of the per-phase means that the detrended data must exceed."""

SHIFT_THRESHOLD = 6.0
"""A level shift is a jump of more than this many robust step-to-step scales."""
SHIFT_OUTLIER_FACTOR = 5.0
"""A level shift is also more than this many robust scales of all jumps."""
_SHIFT_WINDOW_MIN_STEPS = 4
_SHIFT_WINDOW_MAX_STEPS = 8
_MAD_TO_STANDARD_DEVIATION = 1.4826


@dataclass(frozen=True, kw_only=True)
class FittedModel:
    """A damped trend model fitted to the end of one series.

    Attributes
    ----------
    level, trend : float
        Smoothed level and trend after the last observed step.
    alpha, beta, phi : float
        Smoothing parameters; ``beta`` is relative to ``alpha``.
    factors : ndarray or None
        Seasonal factor per phase, mean 1 (multiplicative) or mean 0
        (additive), or None without seasonality.
    multiplicative : bool
        Whether ``factors`` multiply or add.
    season_origin : int
        Phase of the first forecast step.
    scale : float
        Mean absolute first difference of the seasonally adjusted steps the
        model was fitted on; forecast errors are measured in this unit.
    history_steps : int
        Number of steps the model was fitted on.
    shift_steps_ago : int or None
        How many steps before the end a level shift was found, or None.
    """

    level: float
    trend: float
    alpha: float
    beta: float
    phi: float
    factors: np.ndarray | None
    multiplicative: bool
    season_origin: int
    scale: float
    history_steps: int
    shift_steps_ago: int | None

    def predict(self, horizon: int) -> np.ndarray:
        """Return the point forecasts for steps 1 to ``horizon`` ahead."""
        steps = np.arange(1, horizon + 1)
        if self.phi == 0.0 or self.trend == 0.0:
            damped_sum = np.zeros(horizon)
        else:
            damped_sum = np.cumsum(self.phi**steps)
        forecast = self.level + self.trend * damped_sum
        if self.factors is None:
            return forecast

        phases = (self.season_origin + steps - 1) % self.factors.size
        if self.multiplicative:
            return forecast * self.factors[phases]

        return forecast + self.factors[phases]

    def describe(self) -> str:
        """Return a short description of the fitted model for messages."""
        if self.phi == 0.0:
            text = f"simple exponential smoothing (alpha={self.alpha:g})"
        else:
            text = (
                f"damped trend smoothing (alpha={self.alpha:g}, "
                f"beta={self.beta:g}, phi={self.phi:g})"
            )
        text += f" on {self.history_steps} steps"
        if self.factors is not None:
            text += f" with a {self.factors.size}-step season"
        if self.shift_steps_ago is not None:
            text += f", refitted after a level shift {self.shift_steps_ago} steps ago"

        return text


def fit_model(
    values: np.ndarray,
    ends: np.ndarray,
    step_seconds: float,
    *,
    detect_shifts: bool = True,
) -> FittedModel | None:
    """Fit the model to step values, or return None with too few observations.

    Parameters
    ----------
    values : ndarray
        Step values, oldest first; NaN marks a step without samples.
    ends : ndarray
        End time of each step in epoch seconds, used for the season phase.
    step_seconds : float
        Step length; daily and hourly steps may get a season.
    detect_shifts : bool
        Whether to look for a level shift and refit after it.
    """
    observed = np.flatnonzero(np.isfinite(values))
    if observed.size < MIN_OBSERVED_STEPS:
        return None

    values = values[observed[0] :]
    ends = ends[observed[0] :]
    period = _SEASON_STEPS.get(step_seconds)
    phases = None
    factors = None
    multiplicative = False
    if period is not None:
        phases = _phases(ends, step_seconds, period)
        factors, multiplicative = _seasonal_factors(values, phases, period)
    adjusted = _adjust(values, phases, factors, multiplicative)

    shift_steps_ago = None
    if detect_shifts:
        shift_index = _find_level_shift(adjusted)
        if shift_index is not None:
            shift_steps_ago = adjusted.size - shift_index
            adjusted = adjusted[shift_index:]

    scale = _mean_absolute_step_change(adjusted)
    level, trend, alpha, beta, phi = _fit_smoothing(adjusted)
    season_origin = 0
    if phases is not None and factors is not None:
        season_origin = int((phases[-1] + 1) % factors.size)

    return FittedModel(
        level=level,
        trend=trend,
        alpha=alpha,
        beta=beta,
        phi=phi,
        factors=factors,
        multiplicative=multiplicative,
        season_origin=season_origin,
        scale=scale,
        history_steps=int(adjusted.size),
        shift_steps_ago=shift_steps_ago,
    )


def _mean_absolute_step_change(values: np.ndarray) -> float:
    """Return the mean absolute change between neighbouring observed steps.

    Only pairs of consecutive steps count, so gaps do not inflate the scale.
    A series without such pairs falls back to changes across gaps divided by
    the square root of the gap, as for a random walk.
    """
    index = np.flatnonzero(np.isfinite(values))
    if index.size < 2:
        return 0.0

    gaps = np.diff(index)
    changes = np.abs(np.diff(values[index]))
    consecutive = gaps == 1
    if np.count_nonzero(consecutive) >= 2:
        return float(np.mean(changes[consecutive]))

    return float(np.mean(changes / np.sqrt(gaps)))


def _phases(ends: np.ndarray, step_seconds: float, period: int) -> np.ndarray:
    starts = np.floor((ends - step_seconds) / step_seconds).astype(np.int64)

    return np.mod(starts, period)


def _centred_mean(values: np.ndarray, period: int) -> np.ndarray:
    """Centred moving mean over one season; NaN where the window is incomplete."""
    if period % 2:
        weights = np.full(period, 1.0 / period)
    else:
        weights = np.full(period + 1, 1.0 / period)
        weights[[0, -1]] = 0.5 / period
    half = weights.size // 2
    mean = np.full(values.size, np.nan)
    if values.size >= weights.size:
        # A NaN inside a window propagates through the convolution.
        mean[half : values.size - half] = np.convolve(values, weights, mode="valid")

    return mean


def _seasonal_factors(
    values: np.ndarray, phases: np.ndarray, period: int
) -> tuple[np.ndarray | None, bool]:
    """Estimate seasonal factors on detrended data if the history supports them.

    Each step is divided by (or, with values at or below zero, reduced by) the
    centred moving mean over one season, so a trend does not leak into the
    factors. The factors are kept only when every phase has at least two
    detrended values and the per-phase means explain the detrended data
    beyond chance (F statistic).
    """
    if np.count_nonzero(np.isfinite(values)) < _SEASON_MIN_CYCLES * period:
        return None, False

    mean = _centred_mean(values, period)
    multiplicative = bool(np.nanmin(values) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        detrended = values / mean if multiplicative else values - mean
    valid = np.isfinite(detrended)
    counts = np.bincount(phases[valid], minlength=period)
    if np.any(counts < 2):
        return None, False

    sums = np.bincount(phases[valid], weights=detrended[valid], minlength=period)
    phase_means = sums / counts
    fitted = phase_means[phases[valid]]
    residual = float(np.sum((detrended[valid] - fitted) ** 2))
    total = float(np.sum((detrended[valid] - detrended[valid].mean()) ** 2))
    degrees = int(valid.sum()) - period
    if total <= 0.0 or degrees <= 0:
        return None, False

    explained = total - residual
    f_statistic = (explained / (period - 1)) / max(residual / degrees, 1e-300)
    if f_statistic < _SEASON_MIN_F_STATISTIC:
        return None, False

    if multiplicative:
        return phase_means / phase_means.mean(), True

    return phase_means - phase_means.mean(), False


def _adjust(
    values: np.ndarray,
    phases: np.ndarray | None,
    factors: np.ndarray | None,
    multiplicative: bool,
) -> np.ndarray:
    if factors is None or phases is None:
        return values
    if multiplicative:
        return values / factors[phases]

    return values - factors[phases]


def _find_level_shift(values: np.ndarray) -> int | None:
    """Return the index where the level shifts, or None.

    The jump at each candidate index is the median of the next window minus
    the median of the previous one, less what the median step-to-step change
    explains. It counts as a shift when it exceeds ``SHIFT_THRESHOLD`` robust
    scales of the step-to-step changes and ``SHIFT_OUTLIER_FACTOR`` robust
    scales of the jumps at all candidate indexes.
    """
    finite_index = np.flatnonzero(np.isfinite(values))
    finite = values[finite_index]
    window = min(
        _SHIFT_WINDOW_MAX_STEPS, max(_SHIFT_WINDOW_MIN_STEPS, finite.size // 5)
    )
    if finite.size < 3 * window:
        return None

    # Changes per step, so a gap of empty steps in a trending series does not
    # look like a jump.
    changes = np.diff(finite) / np.diff(finite_index)
    slope = float(np.median(changes))
    deviations = np.abs(changes - slope)
    scale = _MAD_TO_STANDARD_DEVIATION * float(np.median(deviations))
    scale = max(scale, float(np.mean(deviations)))
    if scale <= 0.0:
        return None

    windows = np.lib.stride_tricks.sliding_window_view(finite, window)
    medians = np.median(windows, axis=1)
    centres = np.lib.stride_tricks.sliding_window_view(finite_index, window)
    centres = np.median(centres, axis=1)
    # medians[i] covers finite[i : i + window], so a shift at k compares the
    # window that ends just before k with the window that starts at k.
    trend = slope * (centres[window:] - centres[:-window])
    jumps = medians[window:] - medians[:-window] - trend
    best = int(np.argmax(np.abs(jumps)))
    size = abs(float(jumps[best]))
    if size <= SHIFT_THRESHOLD * scale:
        return None

    # A random walk makes large jumps everywhere, so a shift must also stand
    # out from the typical jump of this series.
    deviations_of_jumps = np.abs(jumps - np.median(jumps))
    typical = _MAD_TO_STANDARD_DEVIATION * float(np.median(deviations_of_jumps))
    if size <= SHIFT_OUTLIER_FACTOR * typical:
        return None

    return int(finite_index[best + window])


def _fit_smoothing(values: np.ndarray) -> tuple[float, float, float, float, float]:
    """Fit level and damped trend smoothing on a parameter grid.

    Returns level, trend, alpha, beta and phi. With fewer than
    ``SHORT_HISTORY_STEPS`` observations the trend is fixed at zero, which is
    simple exponential smoothing.
    """
    observed = values[np.isfinite(values)]
    short = observed.size < SHORT_HISTORY_STEPS
    if short:
        alphas, betas, phis = _ALPHAS, np.zeros(1), np.zeros(1)
    else:
        alphas, betas, phis = _ALPHAS, _BETAS, _PHIS
    grid_alpha, grid_beta, grid_phi = (
        axis.ravel() for axis in np.meshgrid(alphas, betas, phis, indexing="ij")
    )
    trend_gain = grid_alpha * grid_beta

    first = int(np.flatnonzero(np.isfinite(values))[0])
    head = observed[: min(observed.size, 4)]
    initial_trend = 0.0 if short else float(head[-1] - head[0]) / (head.size - 1)
    level = np.full(grid_alpha.size, float(values[first]))
    trend = np.full(grid_alpha.size, initial_trend)
    squared_error = np.zeros(grid_alpha.size)
    for value in values[first + 1 :]:
        damped = grid_phi * trend
        forecast = level + damped
        if value != value:  # NaN: carry the forecast forward.
            level, trend = forecast, damped
            continue

        error = value - forecast
        squared_error += error * error
        level = forecast + grid_alpha * error
        trend = damped + trend_gain * error
    best = int(np.argmin(squared_error))

    return (
        float(level[best]),
        float(trend[best]),
        float(grid_alpha[best]),
        float(grid_beta[best]),
        float(grid_phi[best]),
    )
