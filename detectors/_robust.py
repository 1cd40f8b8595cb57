"""Robust location and scale helpers shared by the detectors."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from detectors.base import FloatArray

# 1.4826 * MAD estimates the standard deviation of normal data; 1.2533 * mean
# absolute deviation does the same and is the fallback when over half of the
# values are equal, so that the MAD is 0.
MAD_TO_SIGMA = 1.4826
MEAN_ABSOLUTE_DEVIATION_TO_SIGMA = 1.2533
# Scale used for a constant window, relative to max(1, |median|), so that any
# change from a constant series has a large but finite score.
CONSTANT_SCALE_RELATIVE = 1e-9
# Rows per block when windows are materialised, to bound memory.
BLOCK_ROWS = 4096


def robust_scale(residuals: FloatArray, center: float = 0.0) -> float:
    """Estimate the standard deviation of ``residuals`` around ``center`` robustly."""
    if len(residuals) == 0:
        return float("nan")
    deviations = np.abs(residuals - center)
    scale = MAD_TO_SIGMA * float(np.median(deviations))
    if scale > 0:
        return scale
    scale = MEAN_ABSOLUTE_DEVIATION_TO_SIGMA * float(np.mean(deviations))
    if scale > 0:
        return scale

    return CONSTANT_SCALE_RELATIVE * max(1.0, abs(center))


def rolling_median_scale(
    history: FloatArray, series: FloatArray, window: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Compute the median and robust scale of the ``window`` values before each
    new value.

    Parameters
    ----------
    history : ndarray
        Finite values seen before ``series``; only the last ``window`` matter.
    series : ndarray
        New finite values, in order.
    window : int
        Number of preceding values in each window.

    Returns
    -------
    median, scale, count : ndarray
        For each new value, the median and robust scale of the values before
        it, and how many values the window held (fewer at the start). Where
        the count is 0, median and scale are NaN.
    """
    history = history[-window:]
    combined = np.concatenate((np.full(window, np.nan), history, series))
    start = window + len(history)
    n_samples = len(series)
    median = np.empty(n_samples)
    scale = np.empty(n_samples)
    count = np.minimum(np.arange(n_samples) + len(history), window).astype(float)
    for block_start in range(0, n_samples, BLOCK_ROWS):
        block_stop = min(block_start + BLOCK_ROWS, n_samples)
        views = sliding_window_view(
            combined[start + block_start - window : start + block_stop - 1], window
        )
        block_median, block_scale = _median_scale_of_rows(views)
        median[block_start:block_stop] = block_median
        scale[block_start:block_stop] = block_scale

    return median, scale, count


def _median_scale_of_rows(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    has_gaps = bool(np.isnan(rows[0]).any())
    if has_gaps:
        rows = rows.copy()
        empty = np.isnan(rows).all(axis=1)
        rows[empty, -1] = 0.0
        median = np.nanmedian(rows, axis=1)
        deviations = np.abs(rows - median[:, None])
        mad = np.nanmedian(deviations, axis=1)
        mean_deviation = np.nanmean(deviations, axis=1)
        median[empty] = np.nan
    else:
        median = np.median(rows, axis=1)
        deviations = np.abs(rows - median[:, None])
        mad = np.median(deviations, axis=1)
        mean_deviation = np.mean(deviations, axis=1)
    scale = MAD_TO_SIGMA * mad
    fallback = MEAN_ABSOLUTE_DEVIATION_TO_SIGMA * mean_deviation
    scale = np.where(scale > 0, scale, fallback)
    floor = CONSTANT_SCALE_RELATIVE * np.maximum(1.0, np.abs(median))
    scale = np.where(scale > 0, scale, floor)
    if has_gaps:
        scale[empty] = np.nan

    return median, scale
