"""The ``csv`` source: a file of timestamps and values, optionally replayed.

With ``replay``, historical timestamps are mapped onto the present: the
historical time ``replay.start`` maps onto the moment the replay first ran,
and later rows follow at their original pace divided by ``replay.speed``.
That first moment is stored, so a restart continues the replay.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import PartialReadError, Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReplaySettings:
    start: datetime
    speed: float = 1.0


@dataclass(frozen=True, kw_only=True)
class CsvSettings:
    path: Path
    timestamp_column: str = "timestamp"
    timestamp_format: str | None = None
    timezone: str = "UTC"
    delimiter: str = ","
    replay: ReplaySettings | None = None


@dataclass(frozen=True, kw_only=True)
class CsvQuery:
    value_column: str = "value"
    label_columns: tuple[str, ...] = ()


class CsvSource(Source):
    """Read KPI samples from a CSV file, re-read when the file changes."""

    settings_class: ClassVar[type] = CsvSettings
    query_class: ClassVar[type] = CsvQuery

    _frame: pd.DataFrame | None = None
    _frame_stamp: tuple[float, int] | None = None
    _historical_times: np.ndarray | None = None

    @property
    def settings(self) -> CsvSettings:
        return cast(CsvSettings, self.config.settings)

    @property
    def file_path(self) -> Path:
        return self.context.config.resolve(self.settings.path)

    def prepare(self, now: float) -> None:
        self._load_if_changed()

    def _load_if_changed(self) -> None:
        path = self.file_path
        try:
            status = os.stat(path)
        except OSError as error:
            raise SourceError(
                "file_unreadable",
                f"Cannot read {str(path)!r}: {error.strerror}. Check the path of "
                f"source {self.name!r}.",
            ) from None
        stamp = (status.st_mtime, status.st_size)
        if stamp == self._frame_stamp:
            return

        try:
            frame = pd.read_csv(path, sep=self.settings.delimiter, dtype=str)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise SourceError(
                "invalid_csv", f"Cannot parse {str(path)!r} as CSV: {error}."
            ) from None
        column = self.settings.timestamp_column
        if column not in frame.columns:
            raise SourceError(
                "wrong_columns",
                f"{str(path)!r} has no timestamp column {column!r}; its columns "
                f"are {list(frame.columns)!r}.",
            )
        times = self._parse_times(frame[column])
        frame = frame.assign(_time=times).dropna(subset=["_time"])
        frame = frame.sort_values("_time", kind="stable").reset_index(drop=True)
        self._frame = frame
        self._frame_stamp = stamp
        self._historical_times = frame["_time"].to_numpy(dtype=np.float64)
        logger.info("Loaded %d rows from %s for source %s", len(frame), path, self.name)

    def _parse_times(self, column: pd.Series) -> pd.Series:
        try:
            zone = ZoneInfo(self.settings.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SourceError(
                "invalid_timezone",
                f"Unknown time zone {self.settings.timezone!r} in source "
                f"{self.name!r}; use an IANA name such as UTC or Europe/Berlin.",
            ) from None
        text = column.astype(str).str.strip()
        if (
            self.settings.timestamp_format is None
            and text.str.fullmatch(r"\d+(\.\d+)?").all()
        ):
            epochs = text.astype(float)
            return epochs.where(epochs < 1e11, epochs / 1000.0)

        parsed = pd.to_datetime(
            text, format=self.settings.timestamp_format, errors="coerce"
        )
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(
                zone, ambiguous="NaT", nonexistent="shift_forward"
            )
        bad = int(parsed.isna().sum())
        if bad:
            logger.warning(
                "Skipped %d rows of source %s whose timestamp could not be read",
                bad,
                self.name,
            )
        epoch = pd.Timestamp(0, tz="UTC")
        seconds = (parsed.dt.tz_convert("UTC") - epoch) / pd.Timedelta(seconds=1)
        return seconds.where(parsed.notna())

    def _replay_offset(self) -> tuple[float, float] | None:
        """Return (historical start, real anchor) of the replay, stored once."""
        replay = self.settings.replay
        if replay is None:
            return None

        start = replay.start.astimezone(UTC).timestamp()
        key = f"replay:{self.name}"
        stored = self.context.meta_get(key)
        if stored is not None:
            anchor = json.loads(stored)
            if anchor.get("start") == start and anchor.get("speed") == replay.speed:
                return start, float(anchor["anchor"])

        real = self.context.clock()
        record = {"start": start, "speed": replay.speed, "anchor": real}
        self.context.meta_set(key, json.dumps(record))
        return start, real

    def _present_times(self) -> np.ndarray:
        if self._historical_times is None:
            return np.empty(0)
        offset = self._replay_offset()
        if offset is None:
            return self._historical_times

        start, anchor = offset
        speed = self.settings.replay.speed if self.settings.replay else 1.0
        return anchor + (self._historical_times - start) / speed

    def _columns(self) -> list[str]:
        if self._frame is None:
            return []
        return [str(c) for c in self._frame.columns if c != "_time"]

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        if self._frame is None:
            return []
        query = kpi.query if isinstance(kpi.query, CsvQuery) else CsvQuery()
        missing = [
            c
            for c in (query.value_column, *query.label_columns)
            if c not in self._frame.columns
        ]
        if missing:
            raise SourceError(
                "wrong_columns",
                f"KPI {kpi.name!r}: {str(self.file_path)!r} has no column "
                f"{missing[0]!r}; its columns are {self._columns()!r}.",
            )

        times = self._present_times()
        since = self.context.last_timestamps.get(kpi.name, -np.inf)
        due = (times <= now) & (times > since)
        rows = self._frame[due]
        values = pd.to_numeric(rows[query.value_column], errors="coerce").to_numpy(
            dtype=np.float64
        )
        finite = np.isfinite(values)
        if query.label_columns:
            label_sets = rows[list(query.label_columns)].to_dict("records")
            keys = [
                SeriesKey(
                    kpi.name, make_labels({str(k): str(v) for k, v in labels.items()})
                )
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
        if len(rows):
            self.context.last_timestamps[kpi.name] = float(times[due].max())
        rejected = int((~finite).sum())
        if rejected:
            raise PartialReadError(samples, rejected, kpi.name)
        return samples
