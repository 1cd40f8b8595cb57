"""The sql source against a real PostgreSQL server started for these tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.secrets import Secret
from monitor.sources.base import SourceContext
from monitor.sources.sql import SqlQuery, SqlSettings, SqlSource
from tests.integration._processes import free_port

pytestmark = pytest.mark.integration

START_TIMEOUT_SECONDS = 30.0
NOW = 1_800_000_000.0


def _postgres_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    message = "PostgreSQL is not installed; run apt-get install postgresql."
    if os.environ.get("KRWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root, so root runs it as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    binaries = _postgres_binaries()
    folder = Path(tempfile.mkdtemp(prefix="krwatch-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_server_user(
            [str(binaries / "initdb"), "-D", str(data), "-U", "krwatch"]
            + ["--auth=trust", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        _as_server_user(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port)]
            + ["-h", "127.0.0.1", "-k", str(folder), "-c", "fsync=off"]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"postgresql+psycopg://krwatch@127.0.0.1:{port}/postgres"
    engine = sqlalchemy.create_engine(url)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            try:
                with engine.begin() as connection:
                    connection.execute(
                        sqlalchemy.text(
                            "CREATE TABLE orders (day date, region text, amount numeric);"
                            "INSERT INTO orders VALUES ('2024-10-26', 'eu', 10),"
                            " ('2024-10-28', 'eu', 12.5), ('2024-10-28', 'us', 7)"
                        )
                    )
                break
            except sqlalchemy.exc.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        engine.dispose()
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def postgres_source(url: str, *queries: SqlQuery, timeout: float = 5.0) -> SqlSource:
    context = SourceContext(
        config=Config(path=Path("config.yaml")),
        session=requests.Session(),
        meta_get=lambda _: None,
        meta_set=lambda _key, _value: None,
    )
    config = SourceConfig(
        name="warehouse",
        type="sql",
        timeout=timedelta(seconds=timeout),
        settings=SqlSettings(url=Secret(url), timezone="Europe/Berlin"),
    )
    kpis = [
        KPIConfig(name=f"kpi_{index}", source="warehouse", query=query)
        for index, query in enumerate(queries)
    ]
    return SqlSource(config, kpis, context)


def test_postgres_reads_value_and_labeled_rows(postgres_url: str) -> None:
    total = SqlQuery(
        sql="SELECT SUM(amount) FROM orders WHERE region = :region",
        params={"region": "eu"},
    )
    rows = SqlQuery(
        sql="SELECT day, region, amount FROM orders ORDER BY day, region",
        value_column="amount",
        label_columns=("region",),
        timestamp_column="day",
    )
    source = postgres_source(postgres_url, total, rows)
    result = source.poll(NOW)
    source.close()
    assert result.errors == []
    values = [
        (s.key.kpi, dict(s.key.labels), s.timestamp, s.value) for s in result.samples
    ]
    assert values == [
        ("kpi_0", {}, NOW, 22.5),
        # Berlin midnight is +02:00 before the change on 27 October, +01:00 after.
        ("kpi_1", {"region": "eu"}, 1729893600.0, 10.0),
        ("kpi_1", {"region": "eu"}, 1730070000.0, 12.5),
        ("kpi_1", {"region": "us"}, 1730070000.0, 7.0),
    ]


def test_postgres_statement_timeout_cancels_query(postgres_url: str) -> None:
    slow = SqlQuery(sql="SELECT 1 FROM pg_sleep(5)")
    source = postgres_source(postgres_url, slow, timeout=0.5)
    started = time.monotonic()
    result = source.poll(NOW)
    elapsed = time.monotonic() - started
    assert [e.reason for e in result.errors] == ["timeout"]
    assert elapsed < 3.0
    # statement_timeout was set for the transaction only: the pooled
    # connection runs a later query without it.
    source.kpis = (
        KPIConfig(name="quick", source="warehouse", query=SqlQuery(sql="SELECT 42")),
    )
    with source.engine().connect() as connection:
        setting = connection.execute(sqlalchemy.text("SHOW statement_timeout")).scalar()
    assert setting == "0"
    assert [s.value for s in source.poll(NOW).samples] == [42.0]
    source.close()


def test_postgres_reports_bad_sql_and_missing_columns(postgres_url: str) -> None:
    bad = SqlQuery(sql="SELECT amount FROM no_such_table")
    wrong = SqlQuery(sql="SELECT amount FROM orders LIMIT 1", value_column="total")
    source = postgres_source(postgres_url, bad, wrong)
    result = source.poll(NOW)
    source.close()
    assert result.failed
    assert [e.reason for e in result.errors] == ["query_failed", "wrong_columns"]
    assert "no_such_table" in str(result.errors[0])
