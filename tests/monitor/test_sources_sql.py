from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.secrets import Secret
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import SourceContext
from monitor.sources.sql import SqlQuery, SqlSettings, SqlSource

NOW = 1_800_000_000.0


def make_database(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE orders (day TEXT, region TEXT, amount REAL, note TEXT);
            INSERT INTO orders VALUES
                ('2024-03-30', 'eu', 10, 'ok'),
                ('2024-03-31', 'eu', 12, 'ok'),
                ('2024-03-31', 'us', 7, 'ok'),
                ('2024-04-01', 'us', NULL, 'missing');
            """
        )
    return path


def sql_source(
    database: Path, *queries: SqlQuery, timeout: float = 5.0, **settings: object
) -> SqlSource:
    meta: dict[str, str] = {}
    context = SourceContext(
        config=Config(path=database.parent / "config.yaml"),
        session=requests.Session(),
        meta_get=meta.get,
        meta_set=meta.__setitem__,
    )
    config = SourceConfig(
        name="warehouse",
        type="sql",
        timeout=timedelta(seconds=timeout),
        settings=SqlSettings(url=Secret(f"sqlite:///{database}"), **settings),  # type: ignore[arg-type]
    )
    kpis = [
        KPIConfig(name=f"kpi_{index}", source="warehouse", query=query)
        for index, query in enumerate(queries)
    ]
    return SqlSource(config, kpis, context)


def test_sql_registered_as_type() -> None:
    assert SOURCE_TYPES["sql"] is SqlSource


def test_sql_single_value_uses_poll_time(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    source = sql_source(database, SqlQuery(sql="SELECT SUM(amount) FROM orders"))
    result = source.poll(NOW)
    assert result.errors == []
    assert [(s.key.kpi, s.timestamp, s.value) for s in result.samples] == [
        ("kpi_0", NOW, 29.0)
    ]


def test_sql_rows_of_labels_and_timestamps(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    query = SqlQuery(
        sql="SELECT day, region, amount FROM orders WHERE amount IS NOT NULL",
        value_column="amount",
        label_columns=("region",),
        timestamp_column="day",
    )
    samples = sql_source(database, query, timezone="Europe/Berlin").poll(NOW).samples
    assert [(dict(s.key.labels), s.timestamp, s.value) for s in samples] == [
        ({"region": "eu"}, 1711753200.0, 10.0),
        # Midnight after the spring-forward change is still +01:00.
        ({"region": "eu"}, 1711839600.0, 12.0),
        ({"region": "us"}, 1711839600.0, 7.0),
    ]


def test_sql_params_are_bound_not_formatted(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    query = SqlQuery(
        sql="SELECT COUNT(*) FROM orders WHERE region = :region",
        params={"region": "eu' OR '1'='1"},
    )
    bound = SqlQuery(
        sql="SELECT COUNT(*) FROM orders WHERE region = :region",
        params={"region": "eu"},
    )
    samples = sql_source(database, query, bound).poll(NOW).samples
    assert [s.value for s in samples] == [0.0, 2.0]


def test_sql_rolls_back_writes(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    query = SqlQuery(
        sql="INSERT INTO orders VALUES ('2024-05-01', 'eu', 1, 'x') RETURNING amount"
    )
    sql_source(database, query).poll(NOW)
    with sqlite3.connect(database) as connection:
        count = connection.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert count == 4


def test_sql_times_out_long_query(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    endless = SqlQuery(
        sql=(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT MAX(i) FROM n"
        )
    )
    source = sql_source(database, endless, timeout=0.3)
    result = source.poll(NOW)
    assert result.failed
    assert [e.reason for e in result.errors] == ["timeout"]
    assert "longer than 0.3s" in str(result.errors[0])
    # The deadline is cleared afterwards, so the pooled connection still works.
    quick = SqlQuery(sql="SELECT 1")
    assert sql_source(database, quick).poll(NOW).samples[0].value == 1.0


@pytest.mark.parametrize(
    ("query", "reason", "message"),
    [
        (
            SqlQuery(sql="SELECT amount FROM orders WHERE region = 'none'"),
            "empty_result",
            "returned no rows",
        ),
        (
            SqlQuery(sql="SELECT region, amount FROM orders"),
            "wrong_columns",
            "set value_column",
        ),
        (
            SqlQuery(sql="SELECT amount FROM orders", value_column="total"),
            "wrong_columns",
            "no column 'total'; its columns are \\['amount'\\]",
        ),
        (
            SqlQuery(sql="SELECT amount FROM orders WHERE amount > 8"),
            "wrong_columns",
            "returned 2 rows but names no label",
        ),
        (
            SqlQuery(sql="SELECT note FROM orders WHERE region = 'us' LIMIT 1"),
            "invalid_value",
            "is the string 'ok', not a number",
        ),
        (
            SqlQuery(sql="SELECT amount FROM orders WHERE note = 'missing'"),
            "invalid_value",
            "is null",
        ),
        (SqlQuery(sql="SELECT 1e999"), "invalid_value", "not a finite number"),
        (SqlQuery(sql="SELECT FROM nowhere"), "query_failed", "syntax error"),
        (SqlQuery(sql="SELECT x FROM missing_table"), "query_failed", "no such table"),
    ],
    ids=[
        "empty",
        "two-columns",
        "missing-column",
        "rows-without-labels",
        "text",
        "null",
        "infinite",
        "syntax",
        "missing-table",
    ],
)
def test_sql_rejects_bad_results(
    tmp_path: Path, query: SqlQuery, reason: str, message: str
) -> None:
    database = make_database(tmp_path / "shop.db")
    result = sql_source(database, query).poll(NOW)
    assert result.samples == []
    assert result.failed
    assert [e.reason for e in result.errors] == [reason]
    assert re.search(message, str(result.errors[0])), str(result.errors[0])


def test_sql_partial_rows_keep_good_values(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    query = SqlQuery(
        sql="SELECT day, region, amount FROM orders",
        value_column="amount",
        label_columns=("region",),
        timestamp_column="day",
    )
    result = sql_source(database, query).poll(NOW)
    assert len(result.samples) == 3
    assert not result.failed
    assert [e.reason for e in result.errors] == ["invalid_value"]


def test_sql_rejects_more_rows_than_max_rows(tmp_path: Path) -> None:
    database = make_database(tmp_path / "shop.db")
    query = SqlQuery(
        sql="SELECT day, region, amount FROM orders",
        value_column="amount",
        label_columns=("region", "day"),
    )
    result = sql_source(database, query, max_rows=2).poll(NOW)
    assert [e.reason for e in result.errors] == ["response_too_large"]
    assert "more than 2 rows" in str(result.errors[0])


def test_sql_url_never_in_errors(tmp_path: Path) -> None:
    settings = SqlSettings(
        url=Secret("postgresql+psycopg://user:hunter2@127.0.0.1:1/db")
    )
    assert "hunter2" not in repr(settings)
    context = SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=lambda _: None,
        meta_set=lambda _k, _v: None,
    )
    config = SourceConfig(name="pg", type="sql", settings=settings)
    kpi = KPIConfig(name="orders", source="pg", query=SqlQuery(sql="SELECT 1"))
    result = SqlSource(config, [kpi], context).poll(NOW)
    assert result.failed
    assert result.errors[0].reason == "connection"
    assert "hunter2" not in str(result.errors[0])


def test_sql_settings_reject_unknown_timezone() -> None:
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Base'"):
        SqlSettings(url=Secret("sqlite://"), timezone="Mars/Base")
