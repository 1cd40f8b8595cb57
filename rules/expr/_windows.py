"""Window functions: one value per series from the samples in a time window.

A window of length ``d`` ending at ``now`` contains the samples with
``now - d < timestamp <= now``. Samples whose value is NaN are skipped. A
function returns None when the window has too few samples for it, and the
series is then left out of the result, as in PromQL.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rules.expr._values import FloatArray

WindowFunction = Callable[[FloatArray, FloatArray], float | None]
"""Function of the (timestamps, values) of one window, without NaN values."""


def cut_window(
    timestamps: FloatArray, values: FloatArray, now: float, window_seconds: float
) -> tuple[FloatArray, FloatArray]:
    """Return the samples in ``(now - window_seconds, now]`` without NaN values."""
    start = int(timestamps.searchsorted(now - window_seconds, side="right"))
    end = int(timestamps.searchsorted(now, side="right"))
    window_timestamps = timestamps[start:end]
    window_values = values[start:end]
    missing = np.isnan(window_values)
    if not missing.any():
        return window_timestamps, window_values
    return window_timestamps[~missing], window_values[~missing]


def last_index(timestamps: FloatArray, now: float) -> int:
    """Return the index of the last sample at or before ``now``, or -1 if none."""
    return int(timestamps.searchsorted(now, side="right")) - 1


def _average(timestamps: FloatArray, values: FloatArray) -> float | None:
    return float(values.mean()) if values.size else None


def _minimum(timestamps: FloatArray, values: FloatArray) -> float | None:
    return float(values.min()) if values.size else None


def _maximum(timestamps: FloatArray, values: FloatArray) -> float | None:
    return float(values.max()) if values.size else None


def _sum(timestamps: FloatArray, values: FloatArray) -> float | None:
    return float(values.sum()) if values.size else None


def _count(timestamps: FloatArray, values: FloatArray) -> float | None:
    return float(values.size) if values.size else None


def _delta(timestamps: FloatArray, values: FloatArray) -> float | None:
    if values.size < 2:
        return None
    return float(values[-1] - values[0])


def _percent_change(timestamps: FloatArray, values: FloatArray) -> float | None:
    if values.size < 2:
        return None
    first = float(values[0])
    if first == 0:
        return float("nan")
    return (float(values[-1]) - first) / abs(first)


def _rate(timestamps: FloatArray, values: FloatArray) -> float | None:
    if values.size < 2:
        return None
    elapsed = float(timestamps[-1] - timestamps[0])
    if elapsed == 0:
        return float("nan")
    return float(values[-1] - values[0]) / elapsed


def _slope(timestamps: FloatArray, values: FloatArray) -> float | None:
    if values.size < 2:
        return None
    # Centring the times keeps the sums small, because epoch seconds squared
    # would lose the precision of float64.
    centred = timestamps - timestamps.mean()
    spread = float(np.dot(centred, centred))
    if spread == 0:
        return float("nan")
    return float(np.dot(centred, values - values.mean())) / spread


def predict_linear(
    timestamps: FloatArray, values: FloatArray, now: float, horizon: float
) -> float | None:
    """Return the least-squares line's value at ``now + horizon``."""
    if values.size < 2:
        return None
    mean_time = float(timestamps.mean())
    centred = timestamps - mean_time
    spread = float(np.dot(centred, centred))
    if spread == 0:
        return float("nan")
    mean_value = float(values.mean())
    slope = float(np.dot(centred, values - mean_value)) / spread
    return mean_value + slope * (now + horizon - mean_time)


def quantile(values: FloatArray, q: float) -> float | None:
    """Return the ``q`` quantile of ``values``, interpolating linearly.

    As in PromQL, ``q`` below 0 gives -inf and above 1 gives +inf.
    """
    if values.size == 0:
        return None
    if np.isnan(q):
        return float("nan")
    if q < 0:
        return float("-inf")
    if q > 1:
        return float("inf")
    # The same linear interpolation as numpy.quantile's default method, written
    # out because numpy.quantile costs several times more per small array.
    ordered = np.sort(values)
    position = (ordered.size - 1) * q
    below = int(position)
    if below + 1 >= ordered.size:
        return float(ordered[-1])
    fraction = position - below
    return float(ordered[below] + fraction * (ordered[below + 1] - ordered[below]))


WINDOW_FUNCTIONS: dict[str, WindowFunction] = {
    "avg_over": _average,
    "min_over": _minimum,
    "max_over": _maximum,
    "sum_over": _sum,
    "count_over": _count,
    "delta": _delta,
    "pct_change": _percent_change,
    "rate": _rate,
    "slope": _slope,
}
