from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.secrets import Secret
from monitor.sources.base import SourceContext
from monitor.sources.spreadsheet import (
    SpreadsheetQuery,
    SpreadsheetSettings,
    SpreadsheetSource,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
DAY_ONE = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def spreadsheet_source(
    tmp_path: Path, query: SpreadsheetQuery | None = None, **settings: Any
) -> SpreadsheetSource:
    context = SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=lambda _: None,
        meta_set=lambda _key, _value: None,
    )
    config = SourceConfig(
        name="sheet", type="spreadsheet", settings=SpreadsheetSettings(**settings)
    )
    kpi = KPIConfig(name="signups", source="sheet", query=query or SpreadsheetQuery())
    return SpreadsheetSource(config, [kpi], context)


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> None:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)


def set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


def test_spreadsheet_reads_newest_matching_file(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "old.csv").write_text("timestamp,value\n2024-01-01,1\n")
    (drop / "new.csv").write_text("timestamp,value\n2024-01-01,2\n")
    (drop / "newest.txt").write_text("timestamp,value\n2024-01-01,3\n")
    set_mtime(drop / "old.csv", 1000)
    set_mtime(drop / "new.csv", 2000)
    set_mtime(drop / "newest.txt", 3000)
    source = spreadsheet_source(tmp_path, folder=Path("drop"), pattern="*.csv")
    samples = source.poll(NOW).samples
    assert [(s.timestamp, s.value) for s in samples] == [(DAY_ONE, 2.0)]


def test_spreadsheet_rereads_only_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "kpis.csv"
    path.write_text("timestamp,value\n2024-01-01,1\n")
    set_mtime(path, 1000)
    source = spreadsheet_source(tmp_path, folder=tmp_path)
    assert [s.value for s in source.poll(NOW).samples] == [1.0]
    assert source.poll(NOW).samples == []
    assert source.loads == 1

    path.write_text("timestamp,value\n2024-01-01,1\n2024-01-02,5\n")
    set_mtime(path, 2000)
    assert [s.value for s in source.poll(NOW).samples] == [5.0]
    assert source.loads == 2


def test_spreadsheet_xlsx_sheet_columns_and_format(tmp_path: Path) -> None:
    write_xlsx(
        tmp_path / "report.xlsx",
        {
            "Summary": [["ignored"]],
            "Weekly": [
                ["Week", "Region", "Signups"],
                ["01.01.2024", "eu", 120],
                ["01.01.2024", "us", 80],
                [None, None, None],
                ["08.01.2024", "eu", "n/a"],
            ],
        },
    )
    query = SpreadsheetQuery(value_column="Signups", label_columns=("Region",))
    source = spreadsheet_source(
        tmp_path,
        query,
        folder=tmp_path,
        pattern="*.xlsx",
        sheet="Weekly",
        timestamp_column="Week",
        timestamp_format="%d.%m.%Y",
        timezone="Europe/Berlin",
    )
    result = source.poll(NOW)
    midnight_berlin = DAY_ONE - 3600
    assert [(dict(s.key.labels), s.timestamp, s.value) for s in result.samples] == [
        ({"Region": "eu"}, midnight_berlin, 120.0),
        ({"Region": "us"}, midnight_berlin, 80.0),
    ]
    assert [e.reason for e in result.errors] == ["invalid_value"]


def test_spreadsheet_xlsx_datetime_cells(tmp_path: Path) -> None:
    write_xlsx(
        tmp_path / "report.xlsx",
        {"Data": [["timestamp", "value"], [datetime(2024, 1, 1, 12, 0), 3]]},
    )
    source = spreadsheet_source(tmp_path, folder=tmp_path, pattern="*.xlsx")
    assert [(s.timestamp, s.value) for s in source.poll(NOW).samples] == [
        (DAY_ONE + 12 * 3600, 3.0)
    ]


@pytest.mark.parametrize(
    ("name", "content", "settings", "reason", "message"),
    [
        ("a.csv", b"", {}, "empty_result", "is empty"),
        (
            "a.csv",
            b"day,value\n2024-01-01,1\n",
            {},
            "wrong_columns",
            "no timestamp column",
        ),
        (
            "a.csv",
            b"timestamp,amount\n2024-01-01,1\n",
            {},
            "wrong_columns",
            "no column 'value'",
        ),
        (
            "a.xlsx",
            b"PK\x03\x04 not really",
            {"pattern": "*.xlsx"},
            "invalid_file",
            "XLSX",
        ),
        (
            "a.csv",
            b"timestamp,value\n" + b"2024-01-01,1\n" * 50,
            {"max_response_bytes": 100},
            "response_too_large",
            "raise max_response_bytes",
        ),
        (
            "a.csv",
            b"timestamp,value\n2024-01-01,1\n",
            {"pattern": "*.tsv"},
            "file_unreadable",
            "matches",
        ),
    ],
    ids=["empty", "no-timestamp", "no-value", "broken-xlsx", "too-large", "no-match"],
)
def test_spreadsheet_rejects_bad_files(
    tmp_path: Path,
    name: str,
    content: bytes,
    settings: dict[str, Any],
    reason: str,
    message: str,
) -> None:
    (tmp_path / name).write_bytes(content)
    source = spreadsheet_source(tmp_path, folder=tmp_path, **settings)
    result = source.poll(NOW)
    assert result.samples == []
    assert [e.reason for e in result.errors] == [reason]
    assert message in str(result.errors[0])


def test_spreadsheet_xlsx_missing_sheet_lists_sheets(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "r.xlsx", {"Data": [["timestamp", "value"]]})
    source = spreadsheet_source(
        tmp_path, folder=tmp_path, pattern="*.xlsx", sheet="Weekly"
    )
    result = source.poll(NOW)
    assert "no sheet 'Weekly'; its sheets are ['Data']" in str(result.errors[0])


def test_spreadsheet_settings_need_one_location(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of folder and url"):
        SpreadsheetSettings()
    with pytest.raises(ValueError, match="exactly one of folder and url"):
        SpreadsheetSettings(folder=tmp_path, url=Secret("http://127.0.0.1/x.csv"))


class PublishedSheet:
    """A local server publishing a table with ETag and Last-Modified."""

    def __init__(self) -> None:
        self.body = b"timestamp,value\n2024-01-01,1\n"
        self.kind = "text/csv"
        self.etag = '"v1"'
        self.requests: list[dict[str, str]] = []
        sheet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sheet.requests.append(dict(self.headers))
                if self.headers.get("If-None-Match") == sheet.etag:
                    self.send_response(304)
                    self.send_header("ETag", sheet.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", sheet.kind)
                self.send_header("ETag", sheet.etag)
                self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                self.send_header("Content-Length", str(len(sheet.body)))
                self.end_headers()
                self.wfile.write(sheet.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/export?format=csv"


@pytest.fixture
def published() -> Iterator[PublishedSheet]:
    sheet = PublishedSheet()
    sheet.thread.start()
    yield sheet
    sheet.httpd.shutdown()
    sheet.httpd.server_close()


def test_spreadsheet_url_sends_conditional_get(
    tmp_path: Path, published: PublishedSheet
) -> None:
    source = spreadsheet_source(tmp_path, url=Secret(published.url))
    assert [s.value for s in source.poll(NOW).samples] == [1.0]
    assert source.poll(NOW).samples == []
    assert published.requests[1]["If-None-Match"] == '"v1"'
    assert published.requests[1]["If-Modified-Since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert source.loads == 1

    published.body = b"timestamp,value\n2024-01-01,1\n2024-01-02,4\n"
    published.etag = '"v2"'
    assert [s.value for s in source.poll(NOW).samples] == [4.0]
    assert source.loads == 2


def test_spreadsheet_url_reads_xlsx_by_content_type(
    tmp_path: Path, published: PublishedSheet
) -> None:
    buffer = io.BytesIO()
    workbook = openpyxl.Workbook()
    workbook.active.append(["timestamp", "value"])
    workbook.active.append(["2024-01-01", 9])
    workbook.save(buffer)
    published.body = buffer.getvalue()
    published.kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    source = spreadsheet_source(tmp_path, url=Secret(published.url))
    assert [s.value for s in source.poll(NOW).samples] == [9.0]


def test_spreadsheet_url_rejects_login_page(
    tmp_path: Path, published: PublishedSheet
) -> None:
    published.body = b"<!DOCTYPE html><html><body>Sign in</body></html>"
    published.kind = "text/html; charset=utf-8"
    result = spreadsheet_source(tmp_path, url=Secret(published.url)).poll(NOW)
    assert result.failed
    assert [e.reason for e in result.errors] == ["html_response"]
    assert "needs no login" in str(result.errors[0])
