"""Interface shared by every anomaly detector.

A detector follows the scikit-learn estimator contract. ``__init__`` stores
its keyword parameters unchanged, ``fit`` validates them against the class's
``_parameter_constraints`` table and learns from a history window, and
``score`` scores new samples in streaming order. Learned state ends in ``_``.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from detectors.errors import (
    DataQualityWarning,
    InputShapeError,
    InvalidParameterError,
    NotFittedError,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

STATUS_OK = "ok"
STATUS_INSUFFICIENT_DATA = "insufficient_data"
STATUSES = (STATUS_OK, STATUS_INSUFFICIENT_DATA)


@dataclass(frozen=True, kw_only=True)
class DetectorResult:
    """Scores of a batch of samples, one entry per input sample.

    Parameters
    ----------
    score : ndarray of float
        Anomaly score, 0 or more; higher is more anomalous. The unit depends on
        the detector (robust z, control-chart sigmas, CUSUM sum, isolation
        depth). It is 0 where ``status`` is ``insufficient_data``.
    anomaly_score : ndarray of float
        The score mapped monotonically into [0, 1], comparable across series,
        as the NAB benchmark expects.
    flag : ndarray of bool
        True where ``score`` is above the detector's ``threshold``.
    lower, upper : ndarray of float
        Expected band in the units of the values. NaN where no band could be
        estimated yet.
    status : ndarray of str
        ``"ok"`` where the sample was scored, ``"insufficient_data"`` where the
        value was missing (NaN or infinite) or the history was too short.
    """

    score: FloatArray
    anomaly_score: FloatArray
    flag: BoolArray
    lower: FloatArray
    upper: FloatArray
    status: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.score)

    @property
    def overall_status(self) -> str:
        """Status of the batch: ``"ok"`` when at least one sample was scored."""
        if np.any(self.status == STATUS_OK):
            return STATUS_OK

        return STATUS_INSUFFICIENT_DATA


@dataclass(frozen=True, kw_only=True)
class RawScores:
    """What a detector computes for its finite samples, before the base class
    derives the flag, the normalised score and the status."""

    score: FloatArray
    lower: FloatArray
    upper: FloatArray
    ready: BoolArray


# --- parameter constraints ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Interval:
    """Numbers of one kind within a range; ``None`` bounds are infinite."""

    kind: type[Integral] | type[Real]
    left: float | None
    right: float | None
    closed: str = "both"

    def is_satisfied_by(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        number = float(value)
        if math.isnan(number):
            return False
        if self.left is not None:
            if self.closed in ("both", "left"):
                if number < self.left:
                    return False
            elif number <= self.left:
                return False
        if self.right is not None:
            if self.closed in ("both", "right"):
                if number > self.right:
                    return False
            elif number >= self.right:
                return False

        return True

    def __str__(self) -> str:
        kind = "an int" if self.kind is Integral else "a float"
        left_bracket = "[" if self.closed in ("both", "left") else "("
        right_bracket = "]" if self.closed in ("both", "right") else ")"
        if self.left is None:
            left_bracket = "("
        if self.right is None:
            right_bracket = ")"
        left = "-inf" if self.left is None else f"{self.left:g}"
        right = "inf" if self.right is None else f"{self.right:g}"
        return f"{kind} in the range {left_bracket}{left}, {right}{right_bracket}"


@dataclass(frozen=True)
class Options:
    """A fixed set of allowed values, usually strings."""

    values: tuple[object, ...]

    def is_satisfied_by(self, value: object) -> bool:
        return not isinstance(value, bool) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(value) for value in self.values)


@dataclass(frozen=True)
class OfType:
    """Any instance of one type, such as ``bool`` or ``None``."""

    kind: type

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, self.kind)

    def __str__(self) -> str:
        if self.kind is type(None):
            return "None"

        return f"an instance of {self.kind.__name__}"


Constraint = Interval | Options | OfType


def validate_parameters(
    constraints: dict[str, list[Constraint]], params: dict[str, Any], estimator: str
) -> None:
    """Raise InvalidParameterError for the first parameter outside its constraints.

    Parameters
    ----------
    constraints : dict
        Parameter name to the list of constraints; a value is valid when it
        satisfies any one of them.
    params : dict
        Parameter name to the value received.
    estimator : str
        Class name used in the message.
    """
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None:
            continue
        if any(constraint.is_satisfied_by(value) for constraint in allowed):
            continue
        raise InvalidParameterError(
            parameter=name,
            estimator=estimator,
            allowed=" or ".join(str(constraint) for constraint in allowed),
            value=value,
        )


# --- the estimator --------------------------------------------------------


class BaseDetector:
    """Base class of the anomaly detectors.

    Subclasses declare ``_parameter_constraints``, take every parameter as a
    keyword argument stored unchanged, and implement ``_fit`` and
    ``_score_finite``. The base class validates parameters and input, skips
    NaN and infinite values, warns about duplicate or unordered timestamps,
    and derives ``flag``, ``anomaly_score`` and ``status``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {}

    threshold: float

    # -- scikit-learn style parameters

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, parameter in signature.parameters.items()
            if name != "self" and parameter.kind == parameter.KEYWORD_ONLY
        ]

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters as a dict."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; they are validated by the next ``fit``.

        Raises
        ------
        InvalidParameterError
            If a name is not a parameter of this detector.
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(
                    parameter=name,
                    estimator=type(self).__name__,
                    allowed="a parameter name: " + ", ".join(valid),
                    value=name,
                )
            setattr(self, name, value)

        return self

    def __repr__(self) -> str:
        arguments = ", ".join(
            f"{name}={value!r}" for name, value in self.get_params().items()
        )
        return f"{type(self).__name__}({arguments})"

    # -- public API

    def fit(self, timestamps: Iterable[float], values: Iterable[float]) -> Self:
        """Validate the parameters and learn the normal behaviour from history.

        Parameters
        ----------
        timestamps : array-like of float
            Sample times in seconds since the epoch, UTC, in streaming order.
        values : array-like of float
            Sample values; NaN and infinite values are skipped.

        Returns
        -------
        self
            The fitted detector. A history shorter than the detector needs is
            accepted: the detector then warms up on the samples it scores and
            reports ``insufficient_data`` until it has enough.

        Raises
        ------
        InvalidParameterError
            If a parameter is outside its declared constraints.
        InputShapeError
            If timestamps and values differ in length or are not 1-D.
        """
        validate_parameters(
            self._parameter_constraints, self.get_params(), type(self).__name__
        )
        self._check_parameter_relations()
        times, series = _as_series(timestamps, values, last_timestamp=None)
        finite = np.isfinite(series)
        self.n_samples_seen_ = int(np.count_nonzero(finite))
        self.last_timestamp_ = float(times[-1]) if len(times) else -math.inf
        self._fit(times[finite], series[finite])
        self._last_lower = math.nan
        self._last_upper = math.nan
        return self

    def score(
        self, timestamps: Iterable[float], values: Iterable[float]
    ) -> DetectorResult:
        """Score new samples in streaming order and update the state online.

        The score of each sample uses only that sample and earlier ones.

        Parameters
        ----------
        timestamps : array-like of float
            Sample times in seconds since the epoch, UTC.
        values : array-like of float
            Sample values; NaN and infinite values get status
            ``insufficient_data`` and do not change the state.

        Returns
        -------
        DetectorResult
            One entry per input sample.

        Raises
        ------
        NotFittedError
            If ``fit`` has not been called.
        InputShapeError
            If timestamps and values differ in length or are not 1-D.
        """
        if not hasattr(self, "n_samples_seen_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit with a "
                "history window, possibly empty, before score."
            )
        times, series = _as_series(
            timestamps, values, last_timestamp=self.last_timestamp_
        )
        n_samples = len(series)
        finite = np.isfinite(series)
        raw = self._score_finite(times[finite], series[finite])
        self.n_samples_seen_ += int(np.count_nonzero(finite))
        if n_samples:
            self.last_timestamp_ = max(self.last_timestamp_, float(times[-1]))

        return self._assemble(raw, finite)

    # -- hooks for subclasses

    def _check_parameter_relations(self) -> None:
        """Raise InvalidParameterError where two parameters conflict."""

    def _raise_relation(self, name: str, allowed: str) -> None:
        raise InvalidParameterError(
            parameter=name,
            estimator=type(self).__name__,
            allowed=allowed,
            value=getattr(self, name),
        )

    def _fit(self, times: FloatArray, series: FloatArray) -> None:
        raise NotImplementedError

    def _score_finite(self, times: FloatArray, series: FloatArray) -> RawScores:
        raise NotImplementedError

    def _normalise(self, score: FloatArray) -> FloatArray:
        """Map scores into [0, 1]; the threshold maps to 0.5."""
        return score / (score + self.threshold)

    # -- helpers

    def _assemble(self, raw: RawScores, finite: BoolArray) -> DetectorResult:
        n_samples = len(finite)
        score = np.zeros(n_samples)
        lower = np.full(n_samples, np.nan)
        upper = np.full(n_samples, np.nan)
        ready = np.zeros(n_samples, dtype=bool)
        score[finite] = np.where(raw.ready, raw.score, 0.0)
        lower[finite] = raw.lower
        upper[finite] = raw.upper
        ready[finite] = raw.ready
        lower, upper = self._carry_band_forward(lower, upper, finite)
        anomaly_score = np.clip(self._normalise(score), 0.0, 1.0)
        status = np.where(ready, STATUS_OK, STATUS_INSUFFICIENT_DATA)
        return DetectorResult(
            score=score,
            anomaly_score=anomaly_score,
            flag=ready & (score > self.threshold),
            lower=lower,
            upper=upper,
            status=status,
        )

    def _carry_band_forward(
        self, lower: FloatArray, upper: FloatArray, finite: BoolArray
    ) -> tuple[FloatArray, FloatArray]:
        """Give a skipped sample the band of the last finite sample before it."""
        if len(finite) == 0:
            return lower, upper
        positions = np.where(finite, np.arange(len(finite)), -1)
        last_finite = np.maximum.accumulate(positions)
        carried_lower = np.concatenate(([self._last_lower], lower))[last_finite + 1]
        carried_upper = np.concatenate(([self._last_upper], upper))[last_finite + 1]
        self._last_lower = float(carried_lower[-1])
        self._last_upper = float(carried_upper[-1])
        return carried_lower, carried_upper


def _as_series(
    timestamps: Iterable[float],
    values: Iterable[float],
    *,
    last_timestamp: float | None,
) -> tuple[FloatArray, FloatArray]:
    """Convert input to float arrays, treat bad timestamps as missing values,
    and warn about data problems that the detector tolerates."""
    times = np.asarray(timestamps, dtype=np.float64)
    series = np.array(values, dtype=np.float64)
    if times.ndim != 1 or series.ndim != 1:
        raise InputShapeError(
            f"Timestamps and values must be 1-D; got shapes {times.shape} and "
            f"{series.shape}. Pass one series at a time."
        )
    if len(times) != len(series):
        raise InputShapeError(
            f"Got {len(times)} timestamps but {len(series)} values. Pass one "
            "timestamp per value."
        )

    bad_times = ~np.isfinite(times)
    if np.any(bad_times):
        warnings.warn(
            f"{int(np.count_nonzero(bad_times))} samples have a NaN or infinite "
            "timestamp; they are skipped.",
            DataQualityWarning,
            stacklevel=3,
        )
        series[bad_times] = np.nan
        times = np.where(bad_times, -math.inf, times)
        times = np.maximum.accumulate(times)

    missing = int(np.count_nonzero(~np.isfinite(series) & ~bad_times))
    if missing:
        warnings.warn(
            f"{missing} of {len(series)} values are NaN or infinite; they are "
            "skipped and get status 'insufficient_data'.",
            DataQualityWarning,
            stacklevel=3,
        )

    previous = np.concatenate(
        ([-math.inf if last_timestamp is None else last_timestamp], times[:-1])
    )
    repeated = int(np.count_nonzero(times == previous))
    backwards = int(np.count_nonzero(times < previous))
    if repeated or backwards:
        warnings.warn(
            f"{repeated} samples repeat the previous timestamp and {backwards} go "
            "back in time; they are scored in the order given.",
            DataQualityWarning,
            stacklevel=3,
        )

    return times, series
