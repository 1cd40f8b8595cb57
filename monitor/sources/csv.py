"""The ``csv`` source: a file of timestamps and values, optionally replayed.

With ``replay``, historical timestamps are mapped onto the present: the
historical time ``replay.start`` maps onto the moment the replay first ran,
and later rows follow at their original pace divided by ``replay.speed``.
That first moment is stored, so a restart continues the replay.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import pandas as pd

from monitor.config.model import KPIConfig
from monitor.errors import FieldValueError, SourceError
from monitor.series import Sample
from monitor.sources._frames import (
    TIME_COLUMN,
    check_delimiter,
    prepare_table,
    read_csv_table,
    table_samples,
)
from monitor.sources._http import MAX_RESPONSE_BYTES
from monitor.sources.base import (
    PartialReadError,
    Source,
    SourceSettings,
    summarize_rejections,
)
from monitor.sources.timestamps import check_timezone, time_zone

logger = logging.getLogger(__name__)


MAX_REPLAY_SPEED = 1e6
"""Fastest replay: a year of history in about 32 seconds. Faster speeds
would map one historical second onto less than the resolution of a float
epoch timestamp (about 0.24 microseconds today), merging rows."""


@dataclass(frozen=True, kw_only=True)
class ReplaySettings:
    start: datetime
    speed: float = 1.0
    """Historical seconds replayed per real second."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and 0 < self.speed <= MAX_REPLAY_SPEED):
            raise FieldValueError(
                "speed",
                f"replay.speed is {self.speed!r}; set a number above 0 and at most "
                f"{MAX_REPLAY_SPEED:.0f}, such as 60 to replay an hour of history "
                "per minute.",
            )


@dataclass(frozen=True, kw_only=True)
class CsvSettings(SourceSettings):
    path: Path
    timestamp_column: str = "timestamp"
    timestamp_format: str | None = None
    timezone: str = "UTC"
    """IANA time zone of naive timestamps."""
    delimiter: str = ","
    replay: ReplaySettings | None = None
    max_file_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        check_timezone(self.timezone)
        check_delimiter(self.delimiter)


@dataclass(frozen=True, kw_only=True)
class CsvQuery:
    value_column: str = "value"
    label_columns: tuple[str, ...] = ()


class CsvSource(Source):
    """Read KPI samples from a CSV file, re-read when the file changes."""

    settings_class: ClassVar[type] = CsvSettings
    query_class: ClassVar[type] = CsvQuery

    _frame: pd.DataFrame | None = None
    _frame_stamp: tuple[int, int] | None = None
    _historical_times: np.ndarray | None = None
    _rejected: frozenset[tuple[str, str]] = frozenset()

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
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp == self._frame_stamp:
            return

        limit = self.settings.max_file_bytes
        if status.st_size > limit:
            raise SourceError(
                "response_too_large",
                f"{str(path)!r} has {status.st_size} bytes, more than the limit of "
                f"{limit}; raise max_file_bytes of source {self.name!r}.",
            )
        try:
            body = path.read_bytes()
        except OSError as error:
            raise SourceError(
                "file_unreadable",
                f"Cannot read {str(path)!r}: {error.strerror}. Check the path of "
                f"source {self.name!r}.",
            ) from None
        what = repr(str(path))
        frame, rejections = read_csv_table(
            body, self.settings.delimiter, what, "invalid_csv"
        )
        zone = time_zone(self.settings.timezone, self.name)
        frame, unreadable = prepare_table(
            frame,
            self.settings.timestamp_column,
            self.settings.timestamp_format,
            zone,
            what,
        )
        self._report_new(rejections + unreadable)
        self._frame = frame
        self._frame_stamp = stamp
        self._historical_times = frame[TIME_COLUMN].to_numpy(dtype=np.float64)
        logger.info("Loaded %d rows from %s for source %s", len(frame), path, self.name)

    def _report_new(self, rejections: list[SourceError]) -> None:
        """Count the rejected rows that the previous load did not reject.

        A file that grows is read again whole, so a bad row is counted on
        the load that first finds it.
        """
        keys = {(error.reason, str(error)) for error in rejections}
        new = [e for e in rejections if (e.reason, str(e)) not in self._rejected]
        self._rejected = frozenset(keys)
        self.notices.extend(summarize_rejections(f"Source {self.name!r}", new))

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

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        if self._frame is None:
            return []
        query = kpi.query if isinstance(kpi.query, CsvQuery) else CsvQuery()
        times = self._present_times()
        since = self.context.last_timestamps.get(kpi.name, -np.inf)
        try:
            samples = table_samples(
                self._frame,
                times,
                kpi,
                query.value_column,
                query.label_columns,
                (since, now),
                repr(str(self.file_path)),
            )
        except PartialReadError as error:
            self._advance(kpi, times, since, now)
            raise error
        self._advance(kpi, times, since, now)
        return samples

    def _advance(
        self, kpi: KPIConfig, times: np.ndarray, since: float, now: float
    ) -> None:
        due = times[(times <= now) & (times > since)]
        if len(due):
            self.context.last_timestamps[kpi.name] = float(due.max())
