"""Cleaning raw samples and aggregating them to a regular step grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.keyresults._spec import KeyResultSpec

HOUR_SECONDS = 3600.0
DAY_SECONDS = 86400.0
WEEK_SECONDS = 7 * DAY_SECONDS
STEP_NAMES = {HOUR_SECONDS: "hour", DAY_SECONDS: "day", WEEK_SECONDS: "week"}
"""The step ladder, shortest first, with the names the error pool uses."""

HOURLY_SPAN_MAX_SECONDS = 14 * DAY_SECONDS
"""Level key results that span at most two weeks are modelled in hourly steps."""
# NOTE: a level forecast in hourly steps still swings with the hour of the
# day on a KPI with a weekly pattern, because the hour-of-day season cannot
# hold it and the fit picks a level that follows the last hour.
CUMULATIVE_DAILY_SPAN_MIN_SECONDS = WEEK_SECONDS
"""Cumulative key results that span at least a week are modelled in daily steps.

The daily model can fit a day-of-week season. An hourly model is fitted on
at most 160 steps, under a week, and cannot hold a weekly pattern, so its forecast of a
weekly sum swings with the hour of the day. The open day is split by the
within-day profile of past days (see ``booked_share``).
"""
MAX_SPACING_STEPS = 2.5
"""A step is too short when samples are more than 2.5 steps apart, because
most steps would then be empty."""


def shortest_step(spacing_seconds: float) -> float:
    """Return the shortest step of the ladder for a typical sample spacing."""
    for rung in STEP_NAMES:
        if rung * MAX_SPACING_STEPS >= spacing_seconds:
            return rung

    return WEEK_SECONDS


def clean_samples(
    timestamps: object, values: object
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Return finite samples sorted by time, one per timestamp.

    A timestamp that occurs more than once keeps its last sample, because a
    source that re-delivers a point sends the newer reading last. The third
    item is a sentence saying why the input was unusable, or None.
    """
    try:
        times = np.asarray(timestamps, dtype=float).ravel()
        data = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        empty = np.empty(0)
        return empty, empty, "The samples are not numeric arrays."

    if times.size != data.size:
        empty = np.empty(0)
        reason = (
            f"The series has {times.size} timestamps but {data.size} values, "
            "so the samples cannot be paired."
        )
        return empty, empty, reason

    keep = np.isfinite(times) & np.isfinite(data)
    if not np.all(keep):
        times, data = times[keep], data[keep]
    # Windows of the daemon are already sorted with one sample per
    # timestamp, and this check costs far less than the sort it skips.
    if times.size > 1 and not np.all(times[1:] > times[:-1]):
        order = np.argsort(times, kind="stable")
        times, data = times[order], data[order]
        last_of_each = np.append(times[1:] != times[:-1], True)
        times, data = times[last_of_each], data[last_of_each]

    return times, data, None


def choose_step(spec: KeyResultSpec, times: np.ndarray) -> float:
    """Return the model step in seconds for a key result and its samples.

    The span from start to due picks hourly or daily steps: hourly up to two
    weeks for ``level`` and below one week for ``cumulative`` key results.
    The step grows to the next rung of the ladder when samples are more than
    ``MAX_SPACING_STEPS`` steps apart, so a weekly KPI is modelled in weeks.
    """
    span = spec.due - spec.start
    if spec.measure == "cumulative":
        hourly = span < CUMULATIVE_DAILY_SPAN_MIN_SECONDS
    else:
        hourly = span <= HOURLY_SPAN_MAX_SECONDS
    step = HOUR_SECONDS if hourly else DAY_SECONDS
    if times.size > 2:
        spacing = float(np.median(np.diff(times)))
        return max(step, shortest_step(spacing))

    return step


@dataclass(frozen=True, kw_only=True)
class StepGrid:
    """Complete steps before ``now`` on a grid whose steps end at the due date.

    Attributes
    ----------
    step_seconds : float
        Step length.
    ends : ndarray
        End time of each complete step, oldest first.
    values : ndarray
        Step mean (``level``) or step sum (``cumulative``); NaN for a step
        without samples.
    """

    step_seconds: float
    ends: np.ndarray
    values: np.ndarray

    @property
    def observed_count(self) -> int:
        """Number of steps that hold at least one sample."""
        return int(np.count_nonzero(np.isfinite(self.values)))


def aggregate_steps(
    times: np.ndarray,
    data: np.ndarray,
    *,
    anchor: float,
    now: float,
    step_seconds: float,
    max_steps: int,
    measure: str,
) -> StepGrid:
    """Aggregate the samples before ``now`` into at most ``max_steps`` steps.

    Steps end at ``anchor`` minus whole steps, so a key result's last step ends
    exactly at its due date. Only steps that ended by ``now`` (and by
    ``anchor``) are kept, so every step value covers a whole step. A step is
    the mean of its samples for ``level`` and their sum for ``cumulative``.
    Empty steps are NaN rather than zero, because a missing poll gives no
    information about the value.
    """
    # Step k covers [anchor + k * step, anchor + (k + 1) * step).
    last_index = int(np.floor((min(now, anchor) - anchor) / step_seconds)) - 1
    first_index = last_index - max_steps + 1
    index = np.floor((times - anchor) / step_seconds).astype(np.int64)
    inside = (index >= first_index) & (index <= last_index) & (times < now)
    if not np.any(inside):
        empty = np.empty(0)
        return StepGrid(step_seconds=step_seconds, ends=empty, values=empty)

    first_index = max(first_index, int(index[inside].min()))
    offset = index[inside] - first_index
    length = last_index - first_index + 1
    sums = np.bincount(offset, weights=data[inside], minlength=length)
    counts = np.bincount(offset, minlength=length)
    if measure == "level":
        with np.errstate(invalid="ignore", divide="ignore"):
            step_values = sums / counts
    else:
        step_values = np.where(counts > 0, sums, np.nan)
    ends = anchor + (np.arange(first_index, last_index + 1) + 1) * step_seconds

    return StepGrid(step_seconds=step_seconds, ends=ends, values=step_values)


PROFILE_WEEKS = 4
"""Past weeks whose steps give the within-step profile of the open step."""
_PROFILE_MIN_STEPS = 2


def booked_share(
    times: np.ndarray,
    data: np.ndarray,
    *,
    step_start: float,
    offset: float,
    step_seconds: float,
) -> float:
    """Return the share of a step's sum that is booked ``offset`` seconds in.

    The share is the sum of the samples at most ``offset`` seconds into each
    past step divided by the sum of those steps, over the steps of the last
    ``PROFILE_WEEKS`` weeks before ``step_start``. Steps shorter than a week
    use the steps at the same phase of the week when at least two of them
    have samples, because a KPI's day can have a different shape on each
    weekday. A KPI with a negative sample or a non-positive sum in those
    steps has no usable profile, and the share is then the elapsed time
    share ``offset / step_seconds``.
    """
    elapsed_share = min(max(offset / step_seconds, 0.0), 1.0)
    if offset <= 0.0 or offset >= step_seconds:
        return elapsed_share

    step_count = max(1, round(PROFILE_WEEKS * WEEK_SECONDS / step_seconds))
    oldest = step_start - step_count * step_seconds
    inside = (times >= oldest) & (times < step_start)
    past_times, past_data = times[inside], data[inside]
    if past_data.size == 0 or past_data.min() < 0.0:
        return elapsed_share

    # Past steps are numbered from the oldest, which starts at ``oldest``.
    index = np.floor((past_times - oldest) / step_seconds).astype(np.int64)
    position = past_times - (oldest + index * step_seconds)
    totals = np.bincount(index, weights=past_data, minlength=step_count)
    early_data = np.where(position <= offset, past_data, 0.0)
    early = np.bincount(index, weights=early_data, minlength=step_count)
    chosen = np.bincount(index, minlength=step_count) > 0
    steps_per_week = round(WEEK_SECONDS / step_seconds)
    if steps_per_week > 1:
        # The open step is ``step_count`` steps after the oldest, so the steps
        # whole weeks before it have indexes divisible by the week.
        same_phase = np.arange(step_count) % steps_per_week == 0
        if np.count_nonzero(chosen & same_phase) >= _PROFILE_MIN_STEPS:
            chosen &= same_phase
    if np.count_nonzero(chosen) < _PROFILE_MIN_STEPS:
        return elapsed_share

    total = float(totals[chosen].sum())
    if total <= 0.0:
        return elapsed_share

    return min(max(float(early[chosen].sum()) / total, 0.0), 1.0)
