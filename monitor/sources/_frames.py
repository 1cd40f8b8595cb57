"""Tables to samples, shared by the file-based sources (csv, spreadsheet)."""

from __future__ import annotations

import logging
from datetime import tzinfo

import numpy as np
import pandas as pd

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import PartialReadError

logger = logging.getLogger(__name__)

TIME_COLUMN = "_time"
"""Column added to a loaded table: epoch seconds of each row."""

_EPOCH_PATTERN = r"\d+(\.\d+)?"
_EPOCH_MILLISECONDS_ABOVE = 1e11


def parse_time_column(
    column: pd.Series, time_format: str | None, zone: tzinfo, source: str
) -> pd.Series:
    """Return epoch seconds for a column of timestamps; unreadable ones are NaN.

    A column of plain numbers is read as epoch seconds, or milliseconds above
    1e11. Naive timestamps are localized in ``zone``. Around a change from
    daylight saving time, repeated wall times are assigned by their order when
    the column is sorted, and otherwise read as their first occurrence.
    """
    text = column.astype(str).str.strip()
    if time_format is None and len(text) and text.str.fullmatch(_EPOCH_PATTERN).all():
        epochs = text.astype(float)
        return epochs.where(epochs < _EPOCH_MILLISECONDS_ABOVE, epochs / 1000.0)

    parsed = pd.to_datetime(text, format=time_format, errors="coerce", utc=False)
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = _localize(parsed, zone)
    bad = int(parsed.isna().sum())
    if bad:
        logger.warning(
            "Skipped %d rows of source %s whose timestamp could not be read",
            bad,
            source,
        )
    epoch = pd.Timestamp(0, tz="UTC")
    seconds = (parsed.dt.tz_convert("UTC") - epoch) / pd.Timedelta(seconds=1)
    return seconds.where(parsed.notna())


def _localize(parsed: pd.Series, zone: tzinfo) -> pd.Series:
    try:
        return parsed.dt.tz_localize(
            zone, ambiguous="infer", nonexistent="shift_forward"
        )
    except (ValueError, TypeError):
        # Pandas cannot infer the order (unsorted or several series), so each
        # ambiguous wall time is read as its first, daylight saving occurrence.
        first = np.ones(len(parsed), dtype=bool)
        return parsed.dt.tz_localize(zone, ambiguous=first, nonexistent="shift_forward")


def prepare_table(
    frame: pd.DataFrame,
    timestamp_column: str,
    time_format: str | None,
    zone: tzinfo,
    what: str,
    source: str,
) -> pd.DataFrame:
    """Add ``TIME_COLUMN``, drop rows without a time and sort by time."""
    if timestamp_column not in frame.columns:
        raise SourceError(
            "wrong_columns",
            f"{what} has no timestamp column {timestamp_column!r}; its columns "
            f"are {[str(c) for c in frame.columns]!r}.",
        )
    times = parse_time_column(frame[timestamp_column], time_format, zone, source)
    frame = frame.assign(**{TIME_COLUMN: times}).dropna(subset=[TIME_COLUMN])
    return frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def table_samples(
    frame: pd.DataFrame,
    times: np.ndarray,
    kpi: KPIConfig,
    value_column: str,
    label_columns: tuple[str, ...],
    window: tuple[float, float],
    what: str,
) -> list[Sample]:
    """Return the samples of rows whose time is in ``(since, until]``.

    Raises ``SourceError`` for a missing column and ``PartialReadError``
    when some values are not finite numbers.
    """
    columns = [str(c) for c in frame.columns if c != TIME_COLUMN]
    missing = [c for c in (value_column, *label_columns) if c not in frame.columns]
    if missing:
        raise SourceError(
            "wrong_columns",
            f"KPI {kpi.name!r}: {what} has no column {missing[0]!r}; its columns "
            f"are {columns!r}.",
        )

    since, until = window
    due = (times <= until) & (times > since)
    rows = frame[due]
    values = pd.to_numeric(rows[value_column], errors="coerce").to_numpy(
        dtype=np.float64
    )
    finite = np.isfinite(values)
    if label_columns:
        label_sets = rows[list(label_columns)].astype(str).to_dict("records")
        keys = [
            SeriesKey(kpi.name, make_labels({str(k): v for k, v in labels.items()}))
            for labels in label_sets
        ]
    else:
        keys = [SeriesKey(kpi.name)] * len(rows)
    samples = [
        Sample(key, float(timestamp), float(value))
        for key, timestamp, value, ok in zip(
            keys, times[due], values, finite, strict=True
        )
        if ok
    ]
    rejected = int((~finite).sum())
    if rejected:
        raise PartialReadError(samples, rejected, kpi.name)
    return samples
