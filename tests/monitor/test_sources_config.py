"""Tests of the settings checks of sources, as ``krwatch check`` reports them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import check_files
from monitor.errors import FieldValueError
from monitor.sources.csv import ReplaySettings
from monitor.sources.timestamps import check_timezone

REPLAY = """\
sources:
  - name: history
    type: csv
    path: orders.csv
    replay:
      start: 2015-01-01
      speed: {speed}
kpis: []
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    return check_files("config.yaml", environ={})


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "speed",
    ["0", "-1", "1e308", "1000001"],
    ids=["zero", "negative", "huge", "just-over-maximum"],
)
def test_check_files_rejects_replay_speed(tmp_path: Path, speed: str) -> None:
    problems = problems_of(tmp_path, REPLAY.format(speed=speed))

    assert len(problems) == 1
    assert problems[0].startswith("config.yaml:7: sources[0].replay.speed: ")
    assert "set a number above 0 and at most 1000000" in problems[0]
    assert "such as 60" in problems[0]


@pytest.mark.parametrize(
    "speed", ["1", "0.5", "3600", "1000000"], ids=["one", "slow", "hourly", "maximum"]
)
def test_check_files_accepts_replay_speed(tmp_path: Path, speed: str) -> None:
    assert problems_of(tmp_path, REPLAY.format(speed=speed)) == []


@pytest.mark.parametrize(
    "speed",
    [-1.0, 0.0, -0.0, math.inf, math.nan, 1e308],
    ids=["negative", "zero", "negative-zero", "infinite", "nan", "huge"],
)
def test_replay_settings_rejects_speed(speed: float) -> None:
    with pytest.raises(FieldValueError, match=r"^replay.speed is .*; set a") as raised:
        ReplaySettings(start=datetime(2015, 1, 1, tzinfo=UTC), speed=speed)
    assert raised.value.field == "speed"


TIMEZONE = """\
sources:
  - name: remote
    type: {type}
    {location}
    timezone: Mars/Olympus
kpis: []
"""

LOCATIONS = {
    "csv": "path: orders.csv",
    "http_json": "url: http://127.0.0.1:9090/kpis",
    "sql": "url: sqlite:///kpis.db",
    "spreadsheet": "folder: inbox",
}


@pytest.mark.parametrize("source_type", list(LOCATIONS), ids=list(LOCATIONS))
def test_check_files_bad_timezone_points_at_key(
    tmp_path: Path, source_type: str
) -> None:
    text = TIMEZONE.format(type=source_type, location=LOCATIONS[source_type])

    problems = problems_of(tmp_path, text)

    assert problems == [
        "config.yaml:5: sources[0].timezone: Unknown time zone 'Mars/Olympus'; use "
        "an IANA name such as UTC or Europe/Berlin."
    ]


def test_check_timezone_names_given_field() -> None:
    with pytest.raises(FieldValueError, match="Unknown time zone 'Nowhere'") as raised:
        check_timezone("Nowhere", "zone")
    assert raised.value.field == "zone"


@pytest.mark.parametrize("name", ["UTC", "utc", "Europe/Berlin", "America/New_York"])
def test_check_timezone_accepts_iana_names(name: str) -> None:
    check_timezone(name)
