"""Pooled scaled forecast errors for split conformal prediction intervals."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from detectors.keyresults import _default_errors
from detectors.keyresults._model import FittedModel, fit_model
from detectors.keyresults._steps import (
    DAY_SECONDS,
    HOUR_SECONDS,
    STEP_NAMES,
    WEEK_SECONDS,
    aggregate_steps,
    clean_samples,
    shortest_step,
)

logger = logging.getLogger(__name__)

POOL_SCHEMA_VERSION = 1

NORMAL_SCORES = np.linspace(-2.75, 2.75, 23)
"""Evenly spaced standard normal scores at which error quantiles are tabulated.

Even spacing lets the simulation map a normal draw to its table position with
arithmetic instead of a search.
"""
QUANTILE_LEVELS = np.array([NormalDist().cdf(score) for score in NORMAL_SCORES])
"""Probability levels of the tabulated quantiles, from 0.003 to 0.997."""

HISTORY_BUCKET_EDGES = (4, 9, 26, 52, 104, 160)
HISTORY_BUCKETS = ("4-8", "9-25", "26-51", "52-103", "104-159", "160+")
"""History length buckets, in observed steps the model was fitted on."""
REFIT_BUCKET = "refit"
"""Bucket of every model refitted after a level shift, whatever its length.

A refit's errors are larger than those of a model of the same length on a
history without a break, so they are pooled apart.
"""
ERROR_BUCKETS = (*HISTORY_BUCKETS, REFIT_BUCKET)

EXACT_HORIZON_STEPS = 13
"""Horizons up to this many steps get a bin of their own."""
_HORIZON_BIN_GROWTH = 1.3

MAX_HISTORY_STEPS = 160
"""The model is fitted on at most this many of the latest steps."""

_RECORDED_HORIZON_STEPS = {HOUR_SECONDS: 168, DAY_SECONDS: 91, WEEK_SECONDS: 26}
"""How far ahead each origin's errors are recorded, per step."""
_ORIGIN_SPACING_SECONDS = {
    HOUR_SECONDS: DAY_SECONDS,
    DAY_SECONDS: WEEK_SECONDS,
    WEEK_SECONDS: 4 * WEEK_SECONDS,
}
_TRUNCATION_STEPS = (6, 13, 26, 52, 104, MAX_HISTORY_STEPS)
"""History lengths fitted at each origin, so one long series fills every bucket."""

MIN_POOL_ERRORS = 100
"""A horizon bin with fewer pooled errors falls back to the built-in table."""


def horizon_bin(horizon: int) -> int:
    """Return the bin of a horizon in steps: exact up to 13, then geometric."""
    if horizon <= EXACT_HORIZON_STEPS:
        return horizon

    ratio = math.log(horizon / EXACT_HORIZON_STEPS) / math.log(_HORIZON_BIN_GROWTH)

    return EXACT_HORIZON_STEPS + math.ceil(ratio)


def error_bucket(model: FittedModel) -> str:
    """Return the bucket whose pooled errors calibrate ``model``."""
    if model.shift_steps_ago is not None:
        return REFIT_BUCKET

    return history_bucket(model.history_steps)


def history_bucket(history_steps: int) -> str:
    """Return the history length bucket name for a fitted history length."""
    position = int(np.searchsorted(HISTORY_BUCKET_EDGES, history_steps, "right"))

    return HISTORY_BUCKETS[max(position - 1, 0)]


_DEFAULT_GROWTH_EXPONENT = 0.25
"""Growth exponent of the built-in errors past the tabulated horizons."""


def default_quantiles(bucket: str, horizon: int) -> np.ndarray:
    """Return the built-in normalised error quantiles for one bucket and horizon.

    Past the tabulated horizons the last row is reused with errors growing as
    ``h ** 0.25``, between no growth (stationary series) and the square root
    growth of a random walk.
    """
    # NOTE: the growth past the tabulated horizons is an assumption, not a
    # measurement; the installation's pool replaces it once it fills.
    table = _default_errors.NORMALISED_QUANTILES[bucket]
    if horizon <= len(table):
        return np.asarray(table[horizon - 1], dtype=float)

    last = len(table)
    growth = (horizon / last) ** (_DEFAULT_GROWTH_EXPONENT - 0.5)

    return np.asarray(table[-1], dtype=float) * growth


@dataclass
class _Ring:
    capacity: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    position: int = 0

    def extend(self, new: np.ndarray) -> None:
        if self.values.size < self.capacity:
            room = self.capacity - self.values.size
            self.values = np.concatenate([self.values, new[:room]])
            new = new[room:]
        for value in new:
            self.values[self.position] = value
            self.position = (self.position + 1) % self.capacity


@dataclass
class _OriginLog:
    newest: float
    oldest: float
    count: int


class ErrorPool:
    """Scaled forecast errors pooled across the series of one installation.

    Each error is ``(actual - forecast) / scale`` for a forecast made at a
    past origin whose outcome is now known, where ``scale`` is the mean
    absolute first difference of the seasonally adjusted history. Errors are
    kept per step (hour, day, week), history length bucket and horizon bin,
    divided by the square root of the horizon, in ring buffers of
    ``capacity`` values. Call :meth:`update` for every series once per cycle;
    it returns at once unless an origin's outcome has become known.

    Parameters
    ----------
    capacity : int
        Errors kept per step, bucket and horizon bin; older errors are
        overwritten first.
    max_origins_per_update : int
        Origins fitted per series and call, over all steps, which bounds the
        cost of one call: each origin fits the model at up to six history
        lengths.
    max_backfill_origins : int
        Past origins taken from a series' own history when it is first seen.
    """

    def __init__(
        self,
        *,
        capacity: int = 2000,
        max_origins_per_update: int = 2,
        max_backfill_origins: int = 8,
    ) -> None:
        self.capacity = capacity
        self.max_origins_per_update = max_origins_per_update
        self.max_backfill_origins = max_backfill_origins
        self._errors: dict[tuple[str, str, int], _Ring] = {}
        self._origins: dict[tuple[str, str], _OriginLog] = {}
        self._quantile_cache: dict[tuple[str, str, int], np.ndarray] = {}
        self._revision = 0

    @property
    def revision(self) -> int:
        """Count of error additions, so paths drawn at an older count are stale."""
        return self._revision

    def error_count(self, step_name: str, bucket: str, bin_index: int) -> int:
        """Return how many errors the pool holds for one step, bucket and bin."""
        ring = self._errors.get((step_name, bucket, bin_index))

        return 0 if ring is None else int(ring.values.size)

    def quantiles(self, step_name: str, bucket: str, horizon: int) -> np.ndarray:
        """Return normalised error quantiles at :data:`QUANTILE_LEVELS`.

        The pool's own errors for the horizon's bin are used once the bin
        contains :data:`MIN_POOL_ERRORS`. Until then the built-in table is used.
        """
        key = (step_name, bucket, horizon_bin(horizon))
        cached = self._quantile_cache.get(key)
        if cached is not None:
            return cached

        ring = self._errors.get(key)
        if ring is None or ring.values.size < MIN_POOL_ERRORS:
            return default_quantiles(bucket, horizon)

        table = np.quantile(ring.values, QUANTILE_LEVELS)
        self._quantile_cache[key] = table

        return table

    def update(
        self,
        timestamps: np.ndarray,
        values: np.ndarray,
        now: float,
        *,
        key: str,
        measure: str = "level",
    ) -> int:
        """Add the errors of forecasts whose outcomes became known by ``now``.

        Origins lie on a fixed grid per step (daily origins for hourly steps,
        weekly for daily, four-weekly for weekly). An origin is used once the
        recorded horizon after it has passed, and each origin of a series is
        used once. On the first call for a series, up to
        ``max_backfill_origins`` past origins are taken from its history, a
        few per call.

        Parameters
        ----------
        timestamps, values : ndarray
            The series' samples, epoch seconds UTC and values.
        now : float
            Evaluation time; only samples before it are used.
        key : str
            Stable identity of the series, such as its selector.
        measure : {"level", "cumulative"}
            How samples are aggregated to steps: mean or sum.

        Returns
        -------
        int
            Number of origins fitted by this call.
        """
        times, data, problem = clean_samples(timestamps, values)
        if problem is not None or times.size < 2:
            return 0

        spacing = float(np.median(np.diff(times)))
        fitted = 0
        for step_seconds in _usable_steps(spacing):
            budget = self.max_origins_per_update - fitted
            if budget <= 0:
                break
            # A series aggregated as means and as sums gives different errors,
            # so each measure keeps its own log of used origins.
            origins = self._pending_origins(
                f"{key}|{measure}", step_seconds, now, budget
            )
            for origin in origins:
                self._add_origin_errors(times, data, origin, step_seconds, measure)
            fitted += len(origins)

        return fitted

    def _pending_origins(
        self, key: str, step_seconds: float, now: float, budget: int
    ) -> list[float]:
        """Return the origins to fit now, newest first, and log them as used."""
        spacing = _ORIGIN_SPACING_SECONDS[step_seconds]
        horizon_seconds = _RECORDED_HORIZON_STEPS[step_seconds] * step_seconds
        latest = math.floor((now - horizon_seconds) / spacing) * spacing
        log_key = (key, STEP_NAMES[step_seconds])
        log = self._origins.get(log_key)
        if log is None:
            # Nothing used yet: the empty range just below ``latest``.
            log = _OriginLog(newest=latest - spacing, oldest=latest, count=0)
            self._origins[log_key] = log

        chosen: list[float] = []
        origin = latest
        while origin > log.newest + spacing / 2:
            chosen.append(origin)
            origin -= spacing
        # Origins skipped for the budget are never fitted, which keeps a
        # series that was away for long from costing a long catch-up.
        chosen = chosen[:budget]
        if chosen:
            log.newest = chosen[0]
            log.oldest = min(log.oldest, chosen[-1])
        while len(chosen) < budget and log.count < self.max_backfill_origins:
            log.oldest -= spacing
            log.count += 1
            chosen.append(log.oldest)

        return chosen

    def _add_origin_errors(
        self,
        times: np.ndarray,
        data: np.ndarray,
        origin: float,
        step_seconds: float,
        measure: str,
    ) -> None:
        horizon = _RECORDED_HORIZON_STEPS[step_seconds]
        end = origin + horizon * step_seconds
        grid = aggregate_steps(
            times,
            data,
            anchor=end,
            now=end,
            step_seconds=step_seconds,
            max_steps=MAX_HISTORY_STEPS + horizon,
            measure=measure,
        )
        if grid.values.size <= horizon:
            return

        history_values = grid.values[:-horizon]
        history_ends = grid.ends[:-horizon]
        outcome = grid.values[-horizon:]
        if not np.any(np.isfinite(outcome)):
            return

        observed = int(np.count_nonzero(np.isfinite(history_values)))
        name = STEP_NAMES[step_seconds]
        for length in _TRUNCATION_STEPS:
            if length > history_values.size:
                break
            model = fit_model(
                history_values[-length:], history_ends[-length:], step_seconds
            )
            if model is None or model.scale <= 0.0:
                continue
            errors = (outcome - model.predict(horizon)) / model.scale
            self._add_errors(name, error_bucket(model), errors)
            if length >= observed:
                break
        logger.debug("Added pooled errors for the origin at %s.", origin)

    def _add_errors(self, step_name: str, bucket: str, errors: np.ndarray) -> None:
        normalised = errors / np.sqrt(np.arange(1, errors.size + 1))
        for horizon in range(1, errors.size + 1):
            value = normalised[horizon - 1]
            if not math.isfinite(value):
                continue
            key = (step_name, bucket, horizon_bin(horizon))
            ring = self._errors.get(key)
            if ring is None:
                ring = _Ring(capacity=self.capacity)
                self._errors[key] = ring
            ring.extend(np.array([value]))
            self._quantile_cache.pop(key, None)
        self._revision += 1

    def to_dict(self) -> dict[str, Any]:
        """Return the pool as plain JSON-compatible data, with a schema version."""
        errors = {
            f"{step}/{bucket}/{bin_index}": {
                "position": ring.position,
                "values": [round(float(value), 5) for value in ring.values],
            }
            for (step, bucket, bin_index), ring in self._errors.items()
        }
        origins = [
            [key, step, log.newest, log.oldest, log.count]
            for (key, step), log in self._origins.items()
        ]

        return {
            "version": POOL_SCHEMA_VERSION,
            "capacity": self.capacity,
            "max_origins_per_update": self.max_origins_per_update,
            "max_backfill_origins": self.max_backfill_origins,
            "errors": errors,
            "origins": origins,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorPool:
        """Rebuild a pool from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If the data was written by a newer schema version or is malformed.
        """
        version = data.get("version")
        if version != POOL_SCHEMA_VERSION:
            raise ValueError(
                f"Error pool schema version {version!r} is not supported; this "
                f"krwatch reads version {POOL_SCHEMA_VERSION}. Upgrade krwatch "
                "or delete the saved pool to rebuild it."
            )
        try:
            pool = cls(
                capacity=int(data["capacity"]),
                max_origins_per_update=int(data["max_origins_per_update"]),
                max_backfill_origins=int(data["max_backfill_origins"]),
            )
            for name, entry in data["errors"].items():
                step, bucket, bin_text = name.split("/")
                ring = _Ring(capacity=pool.capacity)
                ring.values = np.asarray(entry["values"], dtype=float)
                ring.position = int(entry["position"])
                pool._errors[(step, bucket, int(bin_text))] = ring
            for key, step, newest, oldest, count in data["origins"]:
                log = _OriginLog(
                    newest=float(newest), oldest=float(oldest), count=count
                )
                pool._origins[(str(key), str(step))] = log
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"Error pool data is malformed ({error}); delete the saved pool "
                "to rebuild it."
            ) from error

        return pool


def _usable_steps(spacing_seconds: float) -> tuple[float, ...]:
    """Return the steps a series sampled at this spacing can be modelled in.

    These are the steps :func:`choose_step` can pick for the series: its
    shortest step, and daily steps as well for an hourly series, because key
    results longer than two weeks use daily steps.
    """
    shortest = shortest_step(spacing_seconds)
    if shortest == HOUR_SECONDS:
        return (HOUR_SECONDS, DAY_SECONDS)

    return (shortest,)
