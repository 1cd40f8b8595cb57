"""Values that expressions are evaluated over and the results they produce."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from monitor.series import Labels
from rules.expr._tree import Matcher

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a vector: a label set and its value."""

    labels: Labels
    value: float


Vector = tuple[Element, ...]
"""Result of an expression over series: at most one element per label set."""


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class SeriesWindow:
    """Recent samples of one series, as the evaluation context provides them.

    Parameters
    ----------
    kpi : str
        Name of the KPI the series belongs to.
    labels : Labels
        Label set of the series, without the KPI name.
    timestamps : numpy.ndarray
        Sample times in seconds since the epoch, UTC, ascending.
    values : numpy.ndarray
        Sample values, one per timestamp. NaN marks a missing value.

    Raises
    ------
    ValueError
        If the arrays are not one-dimensional, differ in length, or the
        timestamps are not ascending.
    """

    kpi: str
    labels: Labels
    timestamps: FloatArray
    values: FloatArray

    def __post_init__(self) -> None:
        timestamps = np.asarray(self.timestamps, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        if timestamps.ndim != 1 or values.shape != timestamps.shape:
            raise ValueError(
                f"The window of {self.kpi!r} {dict(self.labels)} needs two "
                "one-dimensional arrays of equal length, but timestamps have "
                f"shape {timestamps.shape} and values {values.shape}."
            )
        if timestamps.size > 1 and bool(np.any(np.diff(timestamps) < 0)):
            raise ValueError(
                f"The timestamps of {self.kpi!r} {dict(self.labels)} are not "
                "ascending; sort the samples by time before building the window."
            )
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", values)


class KeyResultValues(Protocol):
    """The current figures of one key result."""

    @property
    def progress(self) -> float:
        """(current - baseline) / (target - baseline), not clipped."""
        ...

    @property
    def expected_progress(self) -> float:
        """Progress the glide path expects at the evaluation time."""
        ...

    @property
    def forecast(self) -> float:
        """Predicted value at the due date."""
        ...

    @property
    def attainment_probability(self) -> float:
        """Probability, from 0 to 1, that the value at the due date meets the target."""
        ...


class EvaluationContext(Protocol):
    """The data an expression is evaluated over, provided by the rule engine."""

    @property
    def now(self) -> float:
        """Evaluation time in seconds since the epoch, UTC."""
        ...

    def select(self, kpi: str, matchers: Sequence[Matcher]) -> Sequence[SeriesWindow]:
        """Return the windows of the series of ``kpi`` whose labels match.

        ``matches_all(matchers, labels)`` gives the matching semantics. Samples
        after ``now`` may be included; the evaluator ignores them.
        """
        ...

    def key_result(self, name: str) -> KeyResultValues | None:
        """Return the figures of key result ``name``, or None when there are none."""
        ...

    def anomaly_score(self, kpi: str, labels: Labels) -> float:
        """Return the detector score of the latest sample of one series."""
        ...
