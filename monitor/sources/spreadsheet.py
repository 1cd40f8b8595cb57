"""The ``spreadsheet`` source: a CSV or XLSX table in a folder or at a URL.

In a folder, the newest file matching ``pattern`` (by modification time) is
read, and read again only when its path, modification time or size
changes. At a URL, such as a sheet published as CSV, each poll sends a
conditional GET with the last ``ETag`` and ``Last-Modified``; a 304 reply
keeps the table already read. Rows become due like those of the ``csv``
source: each KPI reads the rows newer than its newest stored sample and not
later than the poll time.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
import openpyxl
import pandas as pd

from monitor.config.model import KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.series import Sample
from monitor.sources._frames import (
    LINE_COLUMN,
    TIME_COLUMN,
    check_delimiter,
    prepare_table,
    read_csv_table,
    table_samples,
)
from monitor.sources._http import HttpOptions, check_http_url, http_request
from monitor.sources.base import (
    Source,
    SourceContext,
    SourceSettings,
    summarize_rejections,
)
from monitor.sources.timestamps import check_timezone, time_zone

logger = logging.getLogger(__name__)

_NOT_MODIFIED = 304
_XLSX_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True, kw_only=True)
class SpreadsheetSettings(HttpOptions, SourceSettings):
    folder: Path | None = None
    """Folder where files are dropped; relative to the config folder."""
    pattern: str = "*.csv"
    """Glob of the files in ``folder``; the newest match is read."""
    url: Secret | None = None
    """URL of the published table; it may contain a signed token."""
    format: Literal["csv", "xlsx"] | None = None
    """Table format; by default from the file suffix or the content type."""
    sheet: str | None = None
    """XLSX sheet to read; by default the first."""
    delimiter: str = ","
    timestamp_column: str = "timestamp"
    timestamp_format: str | None = None
    timezone: str = "UTC"
    """IANA time zone of naive timestamps."""

    def __post_init__(self) -> None:
        if (self.folder is None) == (self.url is None):
            raise ValueError("Set exactly one of folder and url.")
        if self.url is not None:
            check_http_url("url", self.url)
        check_timezone(self.timezone)
        check_delimiter(self.delimiter)


@dataclass(frozen=True, kw_only=True)
class SpreadsheetQuery:
    value_column: str = "value"
    label_columns: tuple[str, ...] = ()


class SpreadsheetSource(Source):
    """Read KPI samples from the newest table file or a published table."""

    settings_class: ClassVar[type] = SpreadsheetSettings
    query_class: ClassVar[type] = SpreadsheetQuery

    def __init__(
        self, config: SourceConfig, kpis: Sequence[KPIConfig], context: SourceContext
    ) -> None:
        super().__init__(config, kpis, context)
        self._frame: pd.DataFrame | None = None
        self._stamp: tuple[object, ...] | None = None
        self._validators: dict[str, str] = {}
        self._origin = ""
        self._rejected: frozenset[tuple[str, str]] = frozenset()
        self.loads = 0
        """Times a table was downloaded or parsed, for tests and debugging."""

    @property
    def settings(self) -> SpreadsheetSettings:
        return cast(SpreadsheetSettings, self.config.settings)

    def prepare(self, now: float) -> None:
        if self.settings.folder is not None:
            self._load_newest_file(self.context.config.resolve(self.settings.folder))
        else:
            self._load_url(cast(Secret, self.settings.url))

    def _load_newest_file(self, folder: Path) -> None:
        candidates = []
        for path in folder.glob(self.settings.pattern):
            try:
                status = path.stat()
            except OSError:
                continue  # The file was removed between glob and stat.
            if path.is_file():
                candidates.append((status.st_mtime_ns, str(path), status.st_size))
        if not candidates:
            raise SourceError(
                "file_unreadable",
                f"No file in {str(folder)!r} matches {self.settings.pattern!r}; "
                f"check folder and pattern of source {self.name!r}.",
            )
        mtime, newest, size = max(candidates)
        stamp = (newest, mtime, size)
        if stamp == self._stamp:
            return

        limit = self.settings.max_response_bytes
        if size > limit:
            raise SourceError(
                "response_too_large",
                f"{newest!r} has {size} bytes, more than the limit of {limit}; "
                f"raise max_response_bytes of source {self.name!r}.",
            )
        try:
            body = Path(newest).read_bytes()
        except OSError as error:
            raise SourceError(
                "file_unreadable", f"Cannot read {newest!r}: {error.strerror}."
            ) from None
        table_format = self.settings.format or _format_of_name(newest)
        self._set_table(body, table_format, repr(newest))
        self._stamp = stamp

    def _load_url(self, url: Secret) -> None:
        what = f"Source {self.name!r}"
        headers = {}
        if self._frame is not None:
            if "etag" in self._validators:
                headers["If-None-Match"] = self._validators["etag"]
            if "last_modified" in self._validators:
                headers["If-Modified-Since"] = self._validators["last_modified"]
        reply = http_request(
            self.context.session,
            what,
            method="GET",
            url=url.reveal(),
            timeout_seconds=self.timeout_seconds,
            options=self.settings,
            ca_path=self.ca_path(self.settings),
            headers=headers,
            allowed_statuses=(_NOT_MODIFIED,),
        )
        if reply.status == _NOT_MODIFIED and self._frame is not None:
            logger.debug("Source %s: the table is not modified", self.name)
            return

        kind = reply.headers.get("Content-Type", "")
        table_format = self.settings.format or (
            "xlsx" if "spreadsheetml" in kind else "csv"
        )
        if reply.body.lstrip()[:1] == b"<":
            raise SourceError(
                "html_response",
                f"{what} returned an HTML page (content type {kind!r}) instead of a "
                "table; check that the URL publishes CSV or XLSX and needs no "
                "login.",
            )
        self._set_table(reply.body, table_format, "the published table")
        self._validators = {
            name: value
            for name, value in (
                ("etag", reply.headers.get("ETag")),
                ("last_modified", reply.headers.get("Last-Modified")),
            )
            if value
        }

    def _set_table(self, body: bytes, table_format: str, what: str) -> None:
        rejections: list[SourceError] = []
        if table_format == "xlsx":
            frame = _read_xlsx(body, self.settings.sheet, what)
        else:
            frame, rejections = read_csv_table(
                body, self.settings.delimiter, what, "invalid_file"
            )
        if frame.empty and not rejections:
            raise SourceError("empty_result", f"{what} has no rows.")
        zone = time_zone(self.settings.timezone, self.name)
        self._frame, unreadable = prepare_table(
            frame,
            self.settings.timestamp_column,
            self.settings.timestamp_format,
            zone,
            what,
        )
        self._report_new(rejections + unreadable)
        self._origin = what
        self.loads += 1
        logger.info(
            "Loaded %d rows from %s for source %s", len(self._frame), what, self.name
        )

    def _report_new(self, rejections: list[SourceError]) -> None:
        """Count the rejected rows that the previous table did not reject."""
        keys = frozenset((error.reason, str(error)) for error in rejections)
        new = [e for e in rejections if (e.reason, str(e)) not in self._rejected]
        self._rejected = keys
        self.notices.extend(summarize_rejections(f"Source {self.name!r}", new))

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        if self._frame is None:
            return []
        query = cast(SpreadsheetQuery, kpi.query)
        times = self._frame[TIME_COLUMN].to_numpy(dtype=np.float64)
        since = self.context.last_timestamps.get(kpi.name, -np.inf)
        due = times[(times <= now) & (times > since)]
        try:
            # A partial read still advances, so rejected rows are not re-read.
            return table_samples(
                self._frame,
                times,
                kpi,
                query.value_column,
                query.label_columns,
                (since, now),
                self._origin,
            )
        finally:
            if len(due):
                self.context.last_timestamps[kpi.name] = float(due.max())


def _format_of_name(name: str) -> str:
    return "xlsx" if os.path.splitext(name)[1].lower() in _XLSX_SUFFIXES else "csv"


def _read_xlsx(body: bytes, sheet: str | None, what: str) -> pd.DataFrame:
    # NOTE: max_response_bytes limits the compressed file only; openpyxl in
    # read-only mode streams rows, but a crafted file can still expand a lot.
    try:
        workbook = openpyxl.load_workbook(
            io.BytesIO(body), read_only=True, data_only=True
        )
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise SourceError(
            "invalid_file",
            f"Cannot open {what} as XLSX ({type(error).__name__}); check the file "
            "format.",
        ) from None
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise SourceError(
                "wrong_columns",
                f"{what} has no sheet {sheet!r}; its sheets are "
                f"{workbook.sheetnames!r}.",
            )
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        rows = [list(row) for row in worksheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    numbered = [
        (number, row)
        for number, row in enumerate(rows, start=1)
        if any(cell is not None for cell in row)
    ]
    if not numbered:
        raise SourceError("empty_result", f"{what} has an empty sheet.")
    header = [_header(cell, index) for index, cell in enumerate(numbered[0][1])]
    data: list[list[Any]] = [
        [*row[: len(header)], *[None] * (len(header) - len(row)), str(number)]
        for number, row in numbered[1:]
    ]
    return pd.DataFrame(data, columns=[*header, LINE_COLUMN], dtype=object)


def _header(cell: object, index: int) -> str:
    return f"column_{index + 1}" if cell is None else str(cell).strip()


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__
