"""Key result forecasts that reuse the fitted model between evaluations."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from detectors.keyresults._forecast import (
    DEFAULT_PATH_COUNT,
    SimulatedPaths,
    closed_forecast,
    current_value,
    draw_model_paths,
    draw_paths,
    insufficient_forecast,
    step_grid,
    summarise,
)
from detectors.keyresults._pool import ErrorPool
from detectors.keyresults._spec import KeyResultForecast, KeyResultSpec
from detectors.keyresults._steps import clean_samples

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class _Entry:
    """Simulated paths of one key result and the inputs they were drawn from."""

    fingerprint: tuple[object, ...]
    step_values: np.ndarray
    pool_revision: int
    paths: SimulatedPaths

    def matches(self, fingerprint: tuple[object, ...], values: np.ndarray) -> bool:
        return self.fingerprint == fingerprint and np.array_equal(
            self.step_values, values, equal_nan=True
        )


class KeyResultForecaster:
    """Forecasts of many key results that refit only when a step completes.

    :func:`forecast_key_result` fits the model and draws every path on each
    call. This class keeps the fitted model and the drawn paths of each key
    result. The model is refitted only when the complete steps before now
    change: a new step, a changed step value, another step length or
    another period. The paths are drawn again without a refit when the
    error pool has gained errors since they were drawn. Otherwise only what
    depends on the evaluation time is recomputed: the current value, the
    booked part of a cumulative key result and the probability against the
    target. With a fixed seed the result equals that of
    :func:`forecast_key_result` on the same input.

    Parameters
    ----------
    error_pool : ErrorPool, optional
        The installation's pooled errors. Without one, the built-in errors
        calibrated on M4 weekly are used.
    seed : int or None
        Seed of each new set of paths; None draws a fresh one.
    path_count : int
        Number of simulated paths.
    detect_shifts : bool
        Whether a level shift cuts the history before the fit.

    Attributes
    ----------
    fit_count : int
        Number of model fits since creation.
    draw_count : int
        Number of times paths were drawn, with or without a fit.
    """

    def __init__(
        self,
        *,
        error_pool: ErrorPool | None = None,
        seed: int | None = 0,
        path_count: int = DEFAULT_PATH_COUNT,
        detect_shifts: bool = True,
    ) -> None:
        self.error_pool = error_pool
        self.seed = seed
        self.path_count = path_count
        self.detect_shifts = detect_shifts
        self.fit_count = 0
        self.draw_count = 0
        self._entries: dict[str, _Entry] = {}

    def forecast(
        self,
        key: str,
        spec: KeyResultSpec,
        timestamps: np.ndarray,
        values: np.ndarray,
        now: float,
    ) -> KeyResultForecast:
        """Forecast one key result, reusing its paths while its steps are unchanged.

        Parameters
        ----------
        key : str
            Stable identity of the key result, such as its name. Paths are
            cached per key.
        spec, timestamps, values, now
            As for :func:`forecast_key_result`.

        Returns
        -------
        KeyResultForecast
        """
        times, data, problem = clean_samples(timestamps, values)
        if problem is not None:
            self._entries.pop(key, None)
            return insufficient_forecast(spec, math.nan, now, problem)

        if now >= spec.due:
            self._entries.pop(key, None)
            return closed_forecast(spec, times, data, now)

        grid = step_grid(spec, times, data, now)
        fingerprint = (spec.measure, spec.due, grid.step_seconds, grid.ends.tobytes())
        revision = -1 if self.error_pool is None else self.error_pool.revision
        entry = self._entries.get(key)
        if entry is None or not entry.matches(fingerprint, grid.values):
            paths = draw_paths(
                spec,
                grid,
                error_pool=self.error_pool,
                seed=self.seed,
                path_count=self.path_count,
                detect_shifts=self.detect_shifts,
            )
            if isinstance(paths, str):
                self._entries.pop(key, None)
                current = current_value(spec, times, data, now)
                return insufficient_forecast(spec, current, now, paths)

            self.fit_count += 1
            self.draw_count += 1
            logger.debug("Fitted the forecast model of key result %s.", key)
        elif entry.pool_revision != revision:
            paths = draw_model_paths(
                spec,
                grid,
                entry.paths.model,
                error_pool=self.error_pool,
                seed=self.seed,
                path_count=self.path_count,
            )
            self.draw_count += 1
        else:
            paths = entry.paths
        self._entries[key] = _Entry(
            fingerprint=fingerprint,
            step_values=grid.values,
            pool_revision=revision,
            paths=paths,
        )

        return summarise(spec, paths.simulate(spec, times, data, now), now)

    def retain(self, keys: Iterable[str]) -> None:
        """Drop the cached paths of every key result not in ``keys``."""
        retained = set(keys)
        for key in [key for key in self._entries if key not in retained]:
            del self._entries[key]

    def __len__(self) -> int:
        """Return the number of key results with cached paths."""
        return len(self._entries)
