"""Tests of the URL checks of HTTP-based sources in the config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config import check_files

SOURCE = """\
sources:
  - name: remote
    type: {type}
    interval: 30s
    url: {url}
kpis: []
"""


def problems_of(tmp_path: Path, text: str, environ: dict[str, str]) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return check_files(str(path), environ=environ)


@pytest.mark.parametrize("source_type", ["prometheus", "jira", "http_json"])
@pytest.mark.parametrize(
    "url",
    ["localhost:9090", "127.0.0.1:9090/api", "ftp://127.0.0.1/", "http://"],
    ids=["host-port", "no-scheme", "ftp", "no-host"],
)
def test_check_files_url_without_scheme(
    tmp_path: Path, source_type: str, url: str
) -> None:
    text = SOURCE.format(type=source_type, url=url)

    problems = problems_of(tmp_path, text, {})

    assert len(problems) == 1
    assert ":5: sources[0].url: url " in problems[0]
    assert "write it with its scheme and host" in problems[0]


@pytest.mark.parametrize("source_type", ["prometheus", "jira", "http_json"])
def test_check_files_http_urls_accepted(tmp_path: Path, source_type: str) -> None:
    for url in ("http://127.0.0.1:9090", "https://kpi.example.test/api/v1"):
        assert problems_of(tmp_path, SOURCE.format(type=source_type, url=url), {}) == []


def test_check_files_secret_url_hidden(tmp_path: Path) -> None:
    text = SOURCE.format(type="http_json", url="${KPI_URL}")

    problems = problems_of(tmp_path, text, {"KPI_URL": "secret-token@nowhere"})

    assert len(problems) == 1
    assert "url from ${KPI_URL} is not an absolute URL" in problems[0]
    assert "secret-token" not in problems[0]


def test_check_files_spreadsheet_url_checked(tmp_path: Path) -> None:
    text = SOURCE.format(type="spreadsheet", url="sheets/export.csv")

    problems = problems_of(tmp_path, text, {})

    assert len(problems) == 1
    assert "sources[0].url: url is not an absolute URL" in problems[0]
    assert "sheets/export.csv" not in problems[0]
