"""The key result forecast: simulate the value at the due date and score it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from detectors.keyresults._model import MIN_OBSERVED_STEPS, FittedModel, fit_model
from detectors.keyresults._pool import (
    MAX_HISTORY_STEPS,
    MIN_POOL_ERRORS,
    NORMAL_SCORES,
    ErrorPool,
    default_quantiles,
    error_bucket,
    horizon_bin,
)
from detectors.keyresults._spec import KeyResultForecast, KeyResultSpec
from detectors.keyresults._steps import (
    DAY_SECONDS,
    HOUR_SECONDS,
    STEP_NAMES,
    WEEK_SECONDS,
    StepGrid,
    aggregate_steps,
    booked_share,
    choose_step,
    clean_samples,
)
from detectors.keyresults._trend import trend_line

logger = logging.getLogger(__name__)

_STEP_ADJECTIVES = {
    HOUR_SECONDS: "hourly",
    DAY_SECONDS: "daily",
    WEEK_SECONDS: "weekly",
}
MAX_SIMULATED_STEPS = 32
"""Cumulative key results with more remaining steps simulate block midpoints."""

DEFAULT_PATH_COUNT = 2000
ON_TRACK_MIN_PROBABILITY = 0.7
AT_RISK_MIN_PROBABILITY = 0.4
"""Status bands: ``on_track`` from 0.7, ``at_risk`` from 0.4, else ``off_track``.

The at-risk band brackets 0.5, the miss-alert threshold that maximised F1 on
M4 weekly, so an alert at 0.5 always comes with a status that is not
``on_track``.
"""


@dataclass(frozen=True, kw_only=True)
class Simulation:
    """Simulated values at the due date, independent of target and direction.

    Attributes
    ----------
    outcomes : ndarray
        Simulated values at the due date (``cumulative``: totals).
    current : float
        Last sample value (``level``) or sum booked since the start.
    median_path : ndarray
        Median forecast of the value at the end of each remaining step
        (``cumulative``: running total including what is booked).
    path_ends : ndarray
        End time of each remaining step, the last one at the due date.
    best_rate_per_day : tuple of float
        Best rate per day the KPI achieved in its history, downward first and
        upward second, over windows as long as the remaining horizon.
    trend_outcome : float
        Value at the due date on the line through the latest observed steps
        (see :attr:`KeyResultForecast.trend_forecast`).
    reason : str
        Which model was used.
    """

    outcomes: np.ndarray
    current: float
    median_path: np.ndarray
    path_ends: np.ndarray
    best_rate_per_day: tuple[float, float]
    trend_outcome: float
    reason: str


def forecast_key_result(
    spec: KeyResultSpec,
    timestamps: np.ndarray,
    values: np.ndarray,
    now: float,
    *,
    error_pool: ErrorPool | None = None,
    seed: int | None = 0,
    path_count: int = DEFAULT_PATH_COUNT,
    detect_shifts: bool = True,
) -> KeyResultForecast:
    """Forecast a key result's value at its due date and score its status.

    Samples may come at any frequency, with gaps, NaN and repeated
    timestamps. They are aggregated to hourly steps for key results that
    span at most two weeks and to daily steps otherwise, or to the sampling
    step if samples come less often, with steps that end at the due date.
    The ``level`` value at the due date is the mean of the samples in the
    last step. A damped trend model with an optional seasonal factor and a
    level-shift refit gives the point forecast, and pooled scaled errors give
    the spread. Cumulative key results add what is booked to simulated sums
    of the remaining steps. This function returns a defined status for any
    input array and does not raise.

    Parameters
    ----------
    spec : KeyResultSpec
        The key result.
    timestamps, values : ndarray
        The KPI series' samples, epoch seconds UTC and values.
    now : float
        Evaluation time in epoch seconds UTC; later samples are ignored.
    error_pool : ErrorPool, optional
        The installation's pooled errors. Without one, the built-in errors
        calibrated on M4 weekly are used.
    seed : int or None
        Seed of the simulation; None draws a fresh one.
    path_count : int
        Number of simulated paths.
    detect_shifts : bool
        Whether a level shift cuts the history before the fit.

    Returns
    -------
    KeyResultForecast
    """
    times, data, problem = clean_samples(timestamps, values)
    if problem is not None:
        return insufficient_forecast(spec, math.nan, now, problem)

    if now >= spec.due:
        return closed_forecast(spec, times, data, now)

    simulation = simulate_key_result(
        spec,
        times,
        data,
        now,
        error_pool=error_pool,
        seed=seed,
        path_count=path_count,
        detect_shifts=detect_shifts,
    )
    if isinstance(simulation, str):
        current = current_value(spec, times, data, now)
        return insufficient_forecast(spec, current, now, simulation)

    return summarise(spec, simulation, now)


def simulate_key_result(
    spec: KeyResultSpec,
    times: np.ndarray,
    data: np.ndarray,
    now: float,
    *,
    error_pool: ErrorPool | None = None,
    seed: int | None = 0,
    path_count: int = DEFAULT_PATH_COUNT,
    detect_shifts: bool = True,
) -> Simulation | str:
    """Simulate the value at the due date from cleaned samples before it.

    Returns a sentence instead when the history is too short. The result
    does not depend on the target, baseline or direction, so one simulation
    can score several targets with :func:`summarise`.
    """
    grid = step_grid(spec, times, data, now)
    paths = draw_paths(
        spec,
        grid,
        error_pool=error_pool,
        seed=seed,
        path_count=path_count,
        detect_shifts=detect_shifts,
    )
    if isinstance(paths, str):
        return paths

    return paths.simulate(spec, times, data, now)


@dataclass(frozen=True, kw_only=True)
class SimulatedPaths:
    """The fitted model and simulated errors of one step grid.

    Everything here depends only on the complete steps before now, the
    period and the error pool, so it stays valid until the history gains a
    step, the period changes or the pool gains errors. :meth:`simulate`
    adds what depends on the evaluation time: the booked part of a
    cumulative key result and the share of the current step that is still
    open.

    Attributes
    ----------
    grid : StepGrid
        The steps the model was fitted on.
    model : FittedModel
        The fitted model.
    point : ndarray
        Point forecast of each remaining step.
    path_ends : ndarray
        End time of each remaining step, the last one at the due date.
    horizons : ndarray
        Horizons, in steps, of the columns of ``errors``.
    errors : ndarray
        Scaled errors, one row per path and one column per horizon; the
        forecast error is ``model.scale`` times this.
    best_rate_per_day : tuple of float
        See :attr:`Simulation.best_rate_per_day`.
    trend : ndarray
        The line through the latest observed steps at each remaining step.
    reason : str
        Which model and errors were used.
    """

    grid: StepGrid
    model: FittedModel
    point: np.ndarray
    path_ends: np.ndarray
    horizons: np.ndarray
    errors: np.ndarray
    best_rate_per_day: tuple[float, float]
    trend: np.ndarray
    reason: str

    def simulate(
        self, spec: KeyResultSpec, times: np.ndarray, data: np.ndarray, now: float
    ) -> Simulation:
        """Return the simulated values at the due date as of ``now``.

        A KPI without a negative sample up to ``now`` is taken to stay
        non-negative, so its paths are cut at zero. A ``level`` outcome
        below zero becomes zero, and so does a negative sum of the remaining
        steps of a ``cumulative`` key result. The cut changes no probability
        against a ``level`` target of zero or more, or a ``cumulative``
        target of at least the booked sum, because every path it moves
        stays on the same side of such a target.
        """
        current = current_value(spec, times, data, now)
        non_negative = _history_non_negative(times, data, now)
        scale = self.model.scale
        if spec.measure == "level":
            outcomes = self.point[-1] + scale * self.errors[:, 0]
            median_path = self.point
            trend_outcome = float(self.trend[-1])
            if non_negative:
                outcomes = np.maximum(outcomes, 0.0)
                median_path = np.maximum(median_path, 0.0)
                trend_outcome = max(trend_outcome, 0.0)
            return Simulation(
                outcomes=outcomes,
                current=current,
                median_path=median_path,
                path_ends=self.path_ends,
                best_rate_per_day=self.best_rate_per_day,
                trend_outcome=trend_outcome,
                reason=self.reason,
            )

        step_seconds = self.grid.step_seconds
        weights = _remaining_weights(
            spec, self.path_ends, step_seconds, now, times, data
        )
        block_weights = _block_weights(weights, self.horizons.size)
        remaining = self.point @ weights + scale * (self.errors @ block_weights)
        point = self.point
        trend_remaining = float(self.trend @ weights)
        if non_negative:
            remaining = np.maximum(remaining, 0.0)
            point = np.maximum(point, 0.0)
            trend_remaining = max(trend_remaining, 0.0)

        return Simulation(
            outcomes=current + remaining,
            current=current,
            median_path=current + np.cumsum(point * weights),
            path_ends=self.path_ends,
            best_rate_per_day=self.best_rate_per_day,
            trend_outcome=current + trend_remaining,
            reason=self.reason,
        )


def step_grid(
    spec: KeyResultSpec, times: np.ndarray, data: np.ndarray, now: float
) -> StepGrid:
    """Aggregate cleaned samples to the complete steps before ``now``.

    The steps end at the due date, so the grid changes only when a step
    completes, a sample inside a complete step changes, or the period moves.
    """
    return aggregate_steps(
        times,
        data,
        anchor=spec.due,
        now=now,
        step_seconds=choose_step(spec, times),
        max_steps=MAX_HISTORY_STEPS,
        measure=spec.measure,
    )


def draw_paths(
    spec: KeyResultSpec,
    grid: StepGrid,
    *,
    error_pool: ErrorPool | None = None,
    seed: int | None = 0,
    path_count: int = DEFAULT_PATH_COUNT,
    detect_shifts: bool = True,
) -> SimulatedPaths | str:
    """Fit the model to a step grid and draw the error paths to the due date.

    Returns a sentence instead when the grid has too few observed steps.
    """
    if grid.observed_count < MIN_OBSERVED_STEPS:
        return (
            f"The series has {grid.observed_count} "
            f"{_STEP_ADJECTIVES[grid.step_seconds]} steps with samples before "
            f"now, and a forecast needs at least {MIN_OBSERVED_STEPS}."
        )

    model = fit_model(
        grid.values, grid.ends, grid.step_seconds, detect_shifts=detect_shifts
    )
    if model is None:
        return f"The series has fewer than {MIN_OBSERVED_STEPS} usable steps."

    return draw_model_paths(
        spec, grid, model, error_pool=error_pool, seed=seed, path_count=path_count
    )


def draw_model_paths(
    spec: KeyResultSpec,
    grid: StepGrid,
    model: FittedModel,
    *,
    error_pool: ErrorPool | None = None,
    seed: int | None = 0,
    path_count: int = DEFAULT_PATH_COUNT,
) -> SimulatedPaths:
    """Draw the error paths to the due date for a model fitted to ``grid``."""
    step_seconds = grid.step_seconds
    step_name = STEP_NAMES[step_seconds]
    last_end = float(grid.ends[-1])
    horizon = max(1, round((spec.due - last_end) / step_seconds))
    bucket = error_bucket(model)
    if spec.measure == "level":
        horizons = np.array([horizon])
    else:
        horizons = _simulated_horizons(horizon)
    rng = np.random.default_rng(seed)
    errors = _sample_errors(error_pool, step_name, bucket, horizons, path_count, rng)
    source = _error_source(error_pool, step_name, bucket, horizon)

    return SimulatedPaths(
        grid=grid,
        model=model,
        point=model.predict(horizon),
        path_ends=last_end + step_seconds * np.arange(1, horizon + 1),
        horizons=horizons,
        errors=errors,
        best_rate_per_day=_best_rates(spec.measure, grid.values, step_seconds, horizon),
        trend=trend_line(grid.values, horizon),
        reason=f"Used {model.describe()} with {source}.",
    )


def _history_non_negative(times: np.ndarray, data: np.ndarray, now: float) -> bool:
    """Return whether the samples up to ``now`` exist and none is negative."""
    seen = data[times <= now]

    return bool(seen.size > 0 and seen.min() >= 0.0)


def _error_source(
    pool: ErrorPool | None, step_name: str, bucket: str, horizon: int
) -> str:
    """Name where the errors at the due date come from, for the reason text."""
    if pool is None:
        return "built-in M4 errors"

    count = pool.error_count(step_name, bucket, horizon_bin(horizon))
    if count < MIN_POOL_ERRORS:
        return (
            f"built-in M4 errors, because the error pool has {count} errors for "
            f"this step and horizon and needs {MIN_POOL_ERRORS}"
        )

    return f"{count} pooled errors of this installation"


def summarise(
    spec: KeyResultSpec, simulation: Simulation, now: float
) -> KeyResultForecast:
    """Score a simulation against a key result's target."""
    outcomes = simulation.outcomes
    quantiles = np.quantile(outcomes, [0.5, 0.1, 0.9, 0.025, 0.975])
    median = float(quantiles[0])
    if spec.direction == "increase":
        probability = float(np.mean(outcomes >= spec.target))
        shortfall = spec.target - median
    else:
        probability = float(np.mean(outcomes <= spec.target))
        shortfall = median - spec.target

    return KeyResultForecast(
        status=_status(probability),
        current=simulation.current,
        progress=_progress(spec, simulation.current),
        expected_progress=_expected_progress(spec, now),
        forecast=median,
        lower_80=float(quantiles[1]),
        upper_80=float(quantiles[2]),
        lower_95=float(quantiles[3]),
        upper_95=float(quantiles[4]),
        attainment_probability=probability,
        shortfall=float(shortfall),
        required_run_rate=_required_rate(spec, simulation.current, now),
        decide_by=_decide_by(spec, simulation, now),
        reason=simulation.reason,
        trend_forecast=simulation.trend_outcome,
    )


def _status(probability: float) -> str:
    if probability >= ON_TRACK_MIN_PROBABILITY:
        return "on_track"
    if probability >= AT_RISK_MIN_PROBABILITY:
        return "at_risk"

    return "off_track"


def _progress(spec: KeyResultSpec, current: float) -> float:
    if spec.target == spec.baseline:
        return math.nan

    return (current - spec.baseline) / (spec.target - spec.baseline)


def _expected_progress(spec: KeyResultSpec, now: float) -> float:
    fraction = (now - spec.start) / (spec.due - spec.start)

    return min(1.0, max(0.0, fraction))


def _required_rate(spec: KeyResultSpec, current: float, now: float) -> float:
    days_left = (spec.due - now) / DAY_SECONDS
    if days_left <= 0.0 or not math.isfinite(current):
        return math.nan

    return (spec.target - current) / days_left


def current_value(
    spec: KeyResultSpec, times: np.ndarray, data: np.ndarray, now: float
) -> float:
    """Return the last sample up to ``now`` (``level``) or the booked sum."""
    if spec.measure == "level":
        before = np.flatnonzero(times <= now)
        return float(data[before[-1]]) if before.size else math.nan

    booked = (times >= spec.start) & (times <= now) & (times < spec.due)

    return float(np.sum(data[booked]))


def _remaining_weights(
    spec: KeyResultSpec,
    path_ends: np.ndarray,
    step_seconds: float,
    now: float,
    times: np.ndarray,
    data: np.ndarray,
) -> np.ndarray:
    """Return the share of each remaining step's sum that is still to be booked.

    A step that is partly booked (the open step, or the step in which the
    key result starts) is split by the within-step profile of past steps
    (:func:`booked_share`). A KPI that books most of its day in the evening
    therefore does not look behind every morning.
    """
    starts = path_ends - step_seconds
    open_from = max(now, spec.start)
    overlap = np.minimum(path_ends, spec.due) - np.maximum(starts, open_from)
    weights = np.clip(overlap / step_seconds, 0.0, 1.0)
    for index in np.flatnonzero((weights > 0.0) & (weights < 1.0)):
        step_start = float(starts[index])
        share = booked_share(
            times,
            data,
            step_start=step_start,
            offset=open_from - step_start,
            step_seconds=step_seconds,
        )
        weights[index] = 1.0 - share

    return weights


def _simulated_horizons(horizon_count: int) -> np.ndarray:
    """Return the horizons whose errors are simulated for a cumulative sum.

    Up to ``MAX_SIMULATED_STEPS`` remaining steps are simulated one by one.
    Longer horizons are cut into that many blocks, and each block is
    simulated at its midpoint, which keeps the cost flat for hourly key
    results.
    """
    if horizon_count <= MAX_SIMULATED_STEPS:
        return np.arange(1, horizon_count + 1)

    # NOTE: a block shares one error, so the spread of a sum over long
    # horizons is an approximation (slightly wider than per-step paths).
    edges = _block_edges(horizon_count)

    return (edges[:-1] + edges[1:] + 1) // 2


def _block_weights(weights: np.ndarray, block_count: int) -> np.ndarray:
    """Return the total weight of each block of :func:`_simulated_horizons`."""
    if block_count == weights.size:
        return weights

    return np.add.reduceat(weights, _block_edges(weights.size)[:-1])


def _block_edges(horizon_count: int) -> np.ndarray:
    bounds = np.linspace(0, horizon_count, MAX_SIMULATED_STEPS + 1)

    return bounds.round().astype(np.intp)


def _sample_errors(
    pool: ErrorPool | None,
    step_name: str,
    bucket: str,
    horizons: np.ndarray,
    path_count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw scaled error paths, one row per path and one column per horizon.

    Each column follows the pooled error distribution at its horizon. The
    columns are joined by a Gaussian copula with random-walk correlation
    (``sqrt(h / k)`` between horizons ``h < k``), because forecast errors of
    one path accumulate over the horizon. The quantile tables are indexed by
    normal scores, so a standard normal draw maps to an error by linear
    interpolation without evaluating the normal CDF.
    """
    tables = np.empty((horizons.size, NORMAL_SCORES.size))
    for column, horizon in enumerate(horizons):
        if pool is None:
            table = default_quantiles(bucket, int(horizon))
        else:
            table = pool.quantiles(step_name, bucket, int(horizon))
        tables[column] = table * math.sqrt(horizon)

    # The scores are evenly spaced, so a score's table position is
    # arithmetic. The steps below work in place on one array because this
    # is the hot loop of an evaluation.
    spacing = float(NORMAL_SCORES[1] - NORMAL_SCORES[0])
    # A random walk with variance h at horizon h, divided by sqrt(h), gives
    # standard normal scores with the random-walk correlation.
    position = rng.standard_normal((path_count, horizons.size))
    position *= np.sqrt(np.diff(horizons, prepend=0))
    if horizons.size > 1:
        np.cumsum(position, axis=1, out=position)
    position *= 1.0 / (spacing * np.sqrt(horizons))
    position -= NORMAL_SCORES[0] / spacing
    np.clip(position, 0.0, NORMAL_SCORES.size - 1.000001, out=position)
    left = position.astype(np.intp)
    position -= left
    left += np.arange(horizons.size) * NORMAL_SCORES.size
    slopes = np.diff(tables, axis=1, append=tables[:, -1:])

    return np.take(tables.ravel(), left) + position * np.take(slopes.ravel(), left)


def _best_rates(
    measure: str, step_values: np.ndarray, step_seconds: float, horizon: int
) -> tuple[float, float]:
    """Return the lowest and highest rate per day achieved over ``horizon`` steps.

    ``level``: change per day between steps ``horizon`` apart.
    ``cumulative``: mean step sum per day over windows of ``horizon`` steps.
    """
    finite = step_values[np.isfinite(step_values)]
    window = int(min(horizon, finite.size - 1))
    if window < 1:
        return math.nan, math.nan

    days_per_step = step_seconds / DAY_SECONDS
    if measure == "level":
        rates = (finite[window:] - finite[:-window]) / (window * days_per_step)
    else:
        sums = np.convolve(finite, np.ones(window), mode="valid")
        rates = sums / (window * days_per_step)

    return float(rates.min()), float(rates.max())


def _decide_by(spec: KeyResultSpec, simulation: Simulation, now: float) -> float | None:
    """Return the last step end from which the needed rate is still achievable.

    The median forecast is followed until each candidate date. From that date
    on, the rate needed to reach the target is compared with the best rate
    the KPI achieved in its history. When the median forecast already meets the
    target, the function returns the due date itself.
    """
    if spec.meets_target(float(simulation.median_path[-1])):
        return spec.due

    lowest, highest = simulation.best_rate_per_day
    if not (math.isfinite(lowest) and math.isfinite(highest)):
        return None

    dates = np.concatenate([[now], simulation.path_ends[:-1]])
    reached = np.concatenate([[simulation.current], simulation.median_path[:-1]])
    if spec.measure == "level" and not math.isfinite(simulation.current):
        reached[0] = simulation.median_path[0]
    days_left = (spec.due - dates) / DAY_SECONDS
    needed = (spec.target - reached) / days_left
    if spec.direction == "increase":
        feasible = needed <= max(highest, 0.0)
    else:
        feasible = needed >= min(lowest, 0.0)
    if not feasible[0]:
        return None

    infeasible = np.flatnonzero(~feasible)
    if infeasible.size == 0:
        return spec.due

    return float(dates[infeasible[0] - 1])


def closed_forecast(
    spec: KeyResultSpec, times: np.ndarray, data: np.ndarray, now: float
) -> KeyResultForecast:
    """Score a key result whose due date has passed against its outcome."""
    if spec.measure == "level":
        before = np.flatnonzero(times < spec.due)
        outcome = float(data[before[-1]]) if before.size else math.nan
    else:
        booked = (times >= spec.start) & (times < spec.due)
        outcome = float(np.sum(data[booked])) if np.any(booked) else math.nan
    if math.isnan(outcome):
        return insufficient_forecast(
            spec, math.nan, now, "The series has no samples before the due date."
        )

    met = spec.meets_target(outcome)
    if spec.direction == "increase":
        shortfall = spec.target - outcome
    else:
        shortfall = outcome - spec.target

    return KeyResultForecast(
        status="achieved" if met else "missed",
        current=outcome,
        progress=_progress(spec, outcome),
        expected_progress=1.0,
        forecast=outcome,
        lower_80=outcome,
        upper_80=outcome,
        lower_95=outcome,
        upper_95=outcome,
        attainment_probability=1.0 if met else 0.0,
        shortfall=shortfall,
        required_run_rate=math.nan,
        decide_by=None,
        reason="The due date has passed, so the outcome is known.",
        trend_forecast=outcome,
    )


def insufficient_forecast(
    spec: KeyResultSpec, current: float, now: float, reason: str
) -> KeyResultForecast:
    """Return an ``insufficient_data`` result that gives ``reason``."""
    return KeyResultForecast(
        status="insufficient_data",
        current=current,
        progress=_progress(spec, current),
        expected_progress=_expected_progress(spec, now),
        forecast=math.nan,
        lower_80=math.nan,
        upper_80=math.nan,
        lower_95=math.nan,
        upper_95=math.nan,
        attainment_probability=math.nan,
        shortfall=math.nan,
        required_run_rate=_required_rate(spec, current, now),
        decide_by=None,
        reason=reason,
    )
