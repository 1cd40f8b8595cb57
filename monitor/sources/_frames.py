"""Tables to samples, shared by the file-based sources (csv, spreadsheet)."""

from __future__ import annotations

import csv
import logging
from datetime import tzinfo

import numpy as np
import pandas as pd

from monitor.config.model import KPIConfig
from monitor.errors import FieldValueError, SourceError
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import PartialReadError

logger = logging.getLogger(__name__)

TIME_COLUMN = "_time"
"""Column added to a loaded table: epoch seconds of each row."""
LINE_COLUMN = "_line"
"""Column added to a loaded table: line of the row in its CSV file, or row
number in its sheet, for messages about rejected rows."""

_EPOCH_PATTERN = r"\d+(\.\d+)?"
_EPOCH_MILLISECONDS_ABOVE = 1e11


def parse_time_column(
    column: pd.Series, time_format: str | None, zone: tzinfo
) -> pd.Series:
    """Return epoch seconds for a column of timestamps; unreadable ones are NaN.

    Without ``time_format``, a column of which at least half are plain numbers
    is read as epoch seconds, or milliseconds above 1e11, and its other
    values are unreadable. Naive timestamps are localized in ``zone``.
    Around a change from daylight saving time, repeated wall times are
    assigned by their order when the column is sorted, and otherwise read
    as their first occurrence.
    """
    text = column.astype(str).str.strip()
    epochs = text.str.fullmatch(_EPOCH_PATTERN)
    if time_format is None and len(text) and 2 * int(epochs.sum()) >= len(text):
        numbers = pd.to_numeric(text.where(epochs), errors="coerce")
        return numbers.where(numbers < _EPOCH_MILLISECONDS_ABOVE, numbers / 1000.0)

    parsed = pd.to_datetime(text, format=time_format, errors="coerce", utc=False)
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = _localize(parsed, zone)
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


def check_delimiter(delimiter: str) -> None:
    """Raise ``FieldValueError`` unless ``delimiter`` is one character."""
    if len(delimiter) != 1:
        raise FieldValueError(
            "delimiter",
            f"delimiter is {delimiter!r}; set one character, such as ',' or ';' "
            '(write a tab as "\\t").',
        )


def read_csv_table(
    body: bytes, delimiter: str, what: str, reason: str
) -> tuple[pd.DataFrame, list[SourceError]]:
    """Parse CSV text into a table of strings with ``LINE_COLUMN``.

    Blank lines are skipped. A row with more fields than the header is
    rejected with reason ``invalid_row``; a shorter row reads as empty in
    its missing columns. Returns the table and the rejections.

    Raises
    ------
    SourceError
        With ``reason`` when the text is not UTF-8 or not CSV, and with
        ``empty_result`` when it has no header.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceError(
            reason,
            f"Cannot parse {what} as CSV: byte {error.start} is not UTF-8; save "
            "the file as UTF-8.",
        ) from None

    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str | None]] = []
    rejections: list[SourceError] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if header is None:
                header = [name.strip() for name in fields]
                continue
            if len(fields) > len(header):
                rejections.append(
                    SourceError(
                        "invalid_row",
                        f"line {line} of {what} has {len(fields)} fields, not "
                        f"{len(header)}",
                    )
                )
                continue
            padding: list[str | None] = [None] * (len(header) - len(fields))
            rows.append([*fields, *padding, str(line)])
    except csv.Error as error:
        raise SourceError(
            reason, f"Cannot parse {what} as CSV at line {reader.line_num}: {error}."
        ) from None
    if header is None:
        raise SourceError("empty_result", f"{what} is empty.")
    frame = pd.DataFrame(rows, columns=[*header, LINE_COLUMN], dtype=object)
    return frame, rejections


def prepare_table(
    frame: pd.DataFrame,
    timestamp_column: str,
    time_format: str | None,
    zone: tzinfo,
    what: str,
) -> tuple[pd.DataFrame, list[SourceError]]:
    """Add ``TIME_COLUMN``, drop rows without a readable time and sort by time.

    Returns the table and one ``invalid_timestamp`` rejection per dropped
    row. A table without ``LINE_COLUMN`` gets one counting from 2, the line
    after the header.
    """
    if timestamp_column not in frame.columns:
        columns = [str(c) for c in frame.columns if c != LINE_COLUMN]
        raise SourceError(
            "wrong_columns",
            f"{what} has no timestamp column {timestamp_column!r}; its columns "
            f"are {columns!r}.",
        )
    if LINE_COLUMN not in frame.columns:
        frame = frame.assign(**{LINE_COLUMN: [str(n + 2) for n in range(len(frame))]})
    times = parse_time_column(frame[timestamp_column], time_format, zone)
    unreadable = frame[times.isna()]
    rejections = [
        SourceError(
            "invalid_timestamp",
            f"line {line} of {what} has the unreadable timestamp {_cell(raw)}",
        )
        for line, raw in zip(
            unreadable[LINE_COLUMN], unreadable[timestamp_column], strict=True
        )
    ]
    frame = frame.assign(**{TIME_COLUMN: times}).dropna(subset=[TIME_COLUMN])
    frame = frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    return frame, rejections


def _cell(raw: object) -> str:
    """Quote a cell for a message, at most 60 characters of it."""
    if _missing(raw):
        return "(empty)"
    return repr(str(raw)[:60])


def _missing(raw: object) -> bool:
    if raw is None:
        return True
    if isinstance(raw, float) and np.isnan(raw):
        return True
    return isinstance(raw, str) and not raw.strip()


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
    when some rows have a value that is not a finite number
    (``invalid_value``) or an empty label column (``invalid_label``).
    """
    columns = [str(c) for c in frame.columns if c not in (TIME_COLUMN, LINE_COLUMN)]
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
    lines = rows[LINE_COLUMN].tolist() if LINE_COLUMN in rows else ["?"] * len(rows)
    raw_values = rows[value_column].tolist()
    label_rows = rows[list(label_columns)].to_dict("records") if label_columns else []

    samples: list[Sample] = []
    rejections: list[SourceError] = []
    for index, timestamp in enumerate(times[due]):
        line = lines[index]
        if not np.isfinite(values[index]):
            rejections.append(
                SourceError(
                    "invalid_value",
                    f"line {line} of {what} has value {_cell(raw_values[index])}, "
                    "not a finite number",
                )
            )
            continue
        labels = label_rows[index] if label_columns else {}
        empty = [str(name) for name, raw in labels.items() if _missing(raw)]
        if empty:
            rejections.append(
                SourceError(
                    "invalid_label",
                    f"line {line} of {what} has no value in label column {empty[0]!r}",
                )
            )
            continue
        key = SeriesKey(
            kpi.name, make_labels({str(k): str(v) for k, v in labels.items()})
        )
        samples.append(Sample(key, float(timestamp), float(values[index])))
    if rejections:
        raise PartialReadError(samples, rejections, kpi.name)
    return samples
