"""The ``sql`` source: a query through SQLAlchemy per KPI, with bound parameters.

A query returns one value (one row, one column) or rows of labels and
values, optionally with a timestamp column. Values reach the database only
as bound parameters from ``params``; the SQL text is never formatted.

Each query runs in its own transaction, which is rolled back afterwards, and
under a deadline: ``statement_timeout`` on PostgreSQL and a progress handler
on SQLite. On other databases only the driver's own timeouts apply.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, ClassVar, cast

import sqlalchemy
import sqlalchemy.exc

from monitor.config.model import KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import (
    PartialReadError,
    Source,
    SourceContext,
    SourceSettings,
    check_value,
)
from monitor.sources.timestamps import check_timezone, parse_timestamp, time_zone

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 10_000
_QUERY_MISTAKES = ("syntax error", "no such table", "no such column")
SQLITE_PROGRESS_OPCODES = 1000
"""SQLite virtual machine steps between two deadline checks."""


@dataclass(frozen=True, kw_only=True)
class SqlSettings(SourceSettings):
    url: Secret
    """SQLAlchemy database URL, such as ``sqlite:///data.db`` or
    ``postgresql+psycopg://user:password@host/db``; it may hold a password."""
    timezone: str = "UTC"
    """IANA time zone of naive timestamps in ``timestamp_column``."""
    max_rows: int = DEFAULT_MAX_ROWS
    """Queries that return more rows are rejected."""

    def __post_init__(self) -> None:
        check_timezone(self.timezone)
        if self.max_rows < 1:
            raise ValueError(f"max_rows is {self.max_rows}; set 1 or more.")


@dataclass(frozen=True, kw_only=True)
class SqlQuery:
    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Bound parameters, written ``:name`` in the SQL text."""
    value_column: str | None = None
    """Column of the value; without it the result must have one column."""
    label_columns: tuple[str, ...] = ()
    timestamp_column: str | None = None
    """Column of the sample time; without it the poll time is used."""


class SqlSource(Source):
    """Run one SQL query per KPI through a pooled SQLAlchemy engine."""

    settings_class: ClassVar[type] = SqlSettings
    query_class: ClassVar[type] = SqlQuery

    @property
    def aligned_samples(self) -> bool:
        return all(
            getattr(kpi.query, "timestamp_column", None) is None for kpi in self.kpis
        )

    def __init__(
        self, config: SourceConfig, kpis: Sequence[KPIConfig], context: SourceContext
    ) -> None:
        super().__init__(config, kpis, context)
        self._engine: sqlalchemy.Engine | None = None
        self._engine_lock = threading.Lock()

    @property
    def settings(self) -> SqlSettings:
        return cast(SqlSettings, self.config.settings)

    def engine(self) -> sqlalchemy.Engine:
        """Return the engine, created on first use."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> sqlalchemy.Engine:
        try:
            url = sqlalchemy.make_url(self.settings.url.reveal())
        except sqlalchemy.exc.ArgumentError:
            raise SourceError(
                "invalid_config",
                f"Source {self.name!r}: the url is not a SQLAlchemy database URL "
                "such as sqlite:///data.db or postgresql+psycopg://host/db.",
            ) from None
        connect_args: dict[str, Any] = {}
        timeout = self.timeout_seconds
        if url.get_backend_name() == "sqlite":
            connect_args["timeout"] = timeout
        elif url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = max(1, round(timeout))
        try:
            return sqlalchemy.create_engine(
                url, connect_args=connect_args, pool_pre_ping=True
            )
        except (sqlalchemy.exc.ArgumentError, ImportError) as error:
            raise SourceError(
                "invalid_config",
                f"Source {self.name!r}: cannot use the database URL's driver "
                f"({type(error).__name__}); install the driver or fix the URL.",
            ) from None

    def close(self) -> None:
        """Close the pooled connections."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(SqlQuery, kpi.query)
        what = f"KPI {kpi.name!r}"
        columns, rows = self._run(query, what)
        if not rows:
            raise SourceError("empty_result", f"{what}: the query returned no rows.")

        value_index = self._value_index(query, columns, what)
        label_indices = {
            column: self._index(columns, column, what) for column in query.label_columns
        }
        time_index = (
            None
            if query.timestamp_column is None
            else self._index(columns, query.timestamp_column, what)
        )
        if time_index is None and not label_indices and len(rows) > 1:
            raise SourceError(
                "wrong_columns",
                f"{what}: the query returned {len(rows)} rows but names no label "
                "or timestamp column; return one row or set label_columns or "
                "timestamp_column.",
            )

        zone = time_zone(self.settings.timezone, self.name)
        samples: list[Sample] = []
        errors: list[SourceError] = []
        for row in rows:
            try:
                samples.append(
                    _row_sample(
                        kpi, row, value_index, label_indices, time_index, now, zone
                    )
                )
            except SourceError as error:
                errors.append(error)
        if errors and not samples:
            raise errors[0]
        if errors:
            raise PartialReadError(samples, errors, kpi.name)
        return samples

    def _run(self, query: SqlQuery, what: str) -> tuple[list[str], list[Any]]:
        engine = self.engine()
        limit = self.settings.max_rows
        deadline = time.monotonic() + self.timeout_seconds
        try:
            with engine.connect() as connection:
                self._set_deadline(connection, deadline)
                try:
                    result = connection.execute(
                        sqlalchemy.text(query.sql), dict(query.params)
                    )
                    if not result.returns_rows:
                        raise SourceError(
                            "wrong_columns",
                            f"{what}: the statement returned no result set; "
                            "write a SELECT.",
                        )
                    columns = [str(name) for name in result.keys()]
                    rows = result.fetchmany(limit + 1)
                finally:
                    self._clear_deadline(connection)
                    connection.rollback()
        except sqlalchemy.exc.OperationalError as error:
            raise _operational_error(error, what, self.timeout_seconds) from None
        except sqlalchemy.exc.DBAPIError as error:
            raise SourceError(
                "query_failed",
                f"{what}: the query failed: {_first_line(error.orig)}.",
            ) from None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SourceError(
                "query_failed",
                f"{what}: the query failed: {type(error).__name__}: "
                f"{_first_line(error)}.",
            ) from None
        if len(rows) > limit:
            raise SourceError(
                "response_too_large",
                f"{what}: the query returned more than {limit} rows; raise max_rows "
                "or aggregate in SQL.",
            )
        return columns, list(rows)

    def _set_deadline(self, connection: sqlalchemy.Connection, deadline: float) -> None:
        backend = connection.dialect.name
        if backend == "postgresql":
            milliseconds = max(1, round(self.timeout_seconds * 1000))
            # set_config with is_local=true lasts until the transaction ends.
            connection.execute(
                sqlalchemy.text("SELECT set_config('statement_timeout', :value, true)"),
                {"value": f"{milliseconds}ms"},
            )
        elif backend == "sqlite":
            raw = _sqlite_connection(connection)
            if raw is not None:
                raw.set_progress_handler(
                    lambda: 1 if time.monotonic() > deadline else 0,
                    SQLITE_PROGRESS_OPCODES,
                )

    @staticmethod
    def _clear_deadline(connection: sqlalchemy.Connection) -> None:
        if connection.dialect.name == "sqlite":
            raw = _sqlite_connection(connection)
            if raw is not None:
                raw.set_progress_handler(None, 0)

    @staticmethod
    def _index(columns: list[str], name: str, what: str) -> int:
        if name in columns:
            return columns.index(name)
        raise SourceError(
            "wrong_columns",
            f"{what}: the query returned no column {name!r}; its columns are "
            f"{columns!r}.",
        )

    def _value_index(self, query: SqlQuery, columns: list[str], what: str) -> int:
        if query.value_column is not None:
            return self._index(columns, query.value_column, what)
        if len(columns) == 1:
            return 0
        raise SourceError(
            "wrong_columns",
            f"{what}: the query returned the columns {columns!r}; set value_column "
            "to the one that holds the value.",
        )


def _row_sample(
    kpi: KPIConfig,
    row: Sequence[Any],
    value_index: int,
    label_indices: Mapping[str, int],
    time_index: int | None,
    now: float,
    zone: tzinfo,
) -> Sample:
    what = f"KPI {kpi.name!r}"
    value = check_value(row[value_index], f"{what}: value")
    timestamp = now
    if time_index is not None:
        timestamp = parse_timestamp(row[time_index], f"{what}: timestamp", zone)
    labels: dict[str, str] = {}
    for name, index in label_indices.items():
        raw = row[index]
        if raw is None:
            raise SourceError("invalid_label", f"{what}: label {name!r} is null.")
        labels[name] = str(raw)
    return Sample(SeriesKey(kpi.name, make_labels(labels)), timestamp, value)


def _sqlite_connection(connection: sqlalchemy.Connection) -> sqlite3.Connection | None:
    raw = connection.connection.dbapi_connection
    return raw if isinstance(raw, sqlite3.Connection) else None


def _operational_error(
    error: sqlalchemy.exc.OperationalError, what: str, timeout_seconds: float
) -> SourceError:
    text = _first_line(error.orig)
    lowered = text.lower()
    if "interrupted" in lowered or "statement timeout" in lowered:
        return SourceError(
            "timeout",
            f"{what}: the query ran longer than {timeout_seconds:g}s and was "
            "cancelled; speed it up or raise the source timeout.",
        )
    if any(marker in lowered for marker in _QUERY_MISTAKES):
        # SQLite reports mistakes in the query as operational errors too.
        return SourceError("query_failed", f"{what}: the query failed: {text}.")
    if "timeout" in lowered and "connect" in lowered:
        return SourceError(
            "timeout", f"{what}: connecting timed out after {timeout_seconds:g}s."
        )
    return SourceError("connection", f"{what}: the database failed: {text}.")


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__
