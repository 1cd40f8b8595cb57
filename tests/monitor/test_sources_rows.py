"""Rejected rows of the file-based sources: skipped, counted and located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import FieldValueError, SourceError
from monitor.sources.base import (
    PartialReadError,
    PollResult,
    Source,
    SourceContext,
    summarize_rejections,
)
from monitor.sources.csv import CsvQuery, CsvSettings, CsvSource
from monitor.sources.spreadsheet import (
    SpreadsheetQuery,
    SpreadsheetSettings,
    SpreadsheetSource,
)

NOW = 2e9


def make_context(tmp_path: Path) -> SourceContext:
    meta: dict[str, str] = {}
    return SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=meta.get,
        meta_set=meta.__setitem__,
    )


def csv_source(tmp_path: Path, text: str, **query: Any) -> CsvSource:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    config = SourceConfig(name="file", type="csv", settings=CsvSettings(path=path))
    kpi = KPIConfig(name="orders", source="file", query=CsvQuery(**query))
    return CsvSource(config, [kpi], make_context(tmp_path))


def folder_source(tmp_path: Path, pattern: str, **query: Any) -> SpreadsheetSource:
    settings = SpreadsheetSettings(folder=tmp_path, pattern=pattern)
    config = SourceConfig(name="sheet", type="spreadsheet", settings=settings)
    kpi = KPIConfig(name="orders", source="sheet", query=SpreadsheetQuery(**query))
    return SpreadsheetSource(config, [kpi], make_context(tmp_path))


def reasons(result: PollResult) -> list[str]:
    return [error.reason for error in result.errors]


def rows(count: int) -> list[str]:
    return [f"{1_700_000_000 + 60 * n},eu,{n}" for n in range(count)]


def with_extra_field(count: int, line: int) -> str:
    """A CSV text of ``count`` rows whose file line ``line`` has four fields."""
    lines = ["timestamp,region,value", *rows(count)]
    lines[line - 1] += ",surplus"
    return "\n".join(lines) + "\n"


def test_csv_extra_field_row_is_skipped(tmp_path: Path) -> None:
    source = csv_source(tmp_path, with_extra_field(20, 14), label_columns=("region",))

    result = source.poll(NOW)

    assert not result.failed
    assert len(result.samples) == 19
    assert 12.0 not in [sample.value for sample in result.samples]
    assert reasons(result) == ["invalid_row"]
    message = str(result.errors[0])
    assert message.startswith("Source 'file': rejected 1 row (line 14 of ")
    assert "has 4 fields, not 3" in message


def test_spreadsheet_extra_field_row_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "week.csv").write_text(with_extra_field(5, 3), encoding="utf-8")

    result = folder_source(tmp_path, "*.csv").poll(NOW)

    assert len(result.samples) == 4
    assert reasons(result) == ["invalid_row"]
    assert "line 3 of" in str(result.errors[0])


def test_csv_each_extra_field_row_is_counted(tmp_path: Path) -> None:
    lines = ["timestamp,value", *[f"{1_700_000_000 + n},{n}" for n in range(10)]]
    for line in (3, 5, 7, 9, 11):
        lines[line - 1] += ",x"
    source = csv_source(tmp_path, "\n".join(lines) + "\n")

    result = source.poll(NOW)

    assert [sample.value for sample in result.samples] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert reasons(result) == ["invalid_row"] * 5
    summary = str(result.errors[0])
    assert "rejected 5 rows" in summary
    assert "line 3 of" in summary
    assert "line 7 of" in summary
    assert "line 9 of" not in summary
    assert summary.endswith("; and 2 more).")


def test_csv_empty_label_rejects_row(tmp_path: Path) -> None:
    text = "timestamp,region,value\n1700000000,eu,1\n1700000060,,2\n1700000120,us,3\n"
    source = csv_source(tmp_path, text, label_columns=("region",))

    result = source.poll(NOW)

    labels = [dict(sample.key.labels)["region"] for sample in result.samples]
    assert labels == ["eu", "us"]
    assert reasons(result) == ["invalid_label"]
    assert "line 3 of" in str(result.errors[0])
    assert "no value in label column 'region'" in str(result.errors[0])


def test_csv_short_row_missing_label_rejects_row(tmp_path: Path) -> None:
    text = "timestamp,value,region\n1700000000,1,eu\n1700000060,2\n"
    source = csv_source(tmp_path, text, label_columns=("region",))

    result = source.poll(NOW)

    assert [sample.value for sample in result.samples] == [1.0]
    assert all("nan" not in sample.key.labels[0] for sample in result.samples)
    assert reasons(result) == ["invalid_label"]


def test_csv_label_text_na_is_kept(tmp_path: Path) -> None:
    # "NA" is a real label value here (North America), not a missing one.
    text = "timestamp,region,value\n1700000000,NA,1\n"
    source = csv_source(tmp_path, text, label_columns=("region",))

    result = source.poll(NOW)

    assert result.errors == []
    assert [sample.key.labels for sample in result.samples] == [(("region", "NA"),)]


def test_csv_unreadable_timestamp_is_counted(tmp_path: Path) -> None:
    text = "timestamp,value\n2024-01-01,1\nsoon,2\n2024-01-03,3\n"
    source = csv_source(tmp_path, text)

    result = source.poll(NOW)

    assert [sample.value for sample in result.samples] == [1.0, 3.0]
    assert reasons(result) == ["invalid_timestamp"]
    assert "line 3 of" in str(result.errors[0])
    assert "unreadable timestamp 'soon'" in str(result.errors[0])


def test_csv_unreadable_epoch_keeps_other_rows(tmp_path: Path) -> None:
    text = "timestamp,value\n1700000000,1\nsoon,2\n1700000120,3\n"
    source = csv_source(tmp_path, text)

    result = source.poll(NOW)

    assert [sample.timestamp for sample in result.samples] == [
        1_700_000_000.0,
        1_700_000_120.0,
    ]
    assert reasons(result) == ["invalid_timestamp"]


def test_csv_rejected_row_counted_once_across_reloads(tmp_path: Path) -> None:
    text = "timestamp,value\n1700000000,1\nsoon,2\n1700000060,1,x\n"
    source = csv_source(tmp_path, text)
    first = source.poll(NOW)
    with (tmp_path / "data.csv").open("a", encoding="utf-8") as file:
        file.write("1700000120,4\nlater,5\n")

    second = source.poll(NOW)

    assert sorted(reasons(first)) == ["invalid_row", "invalid_timestamp"]
    assert [sample.value for sample in second.samples] == [4.0]
    assert reasons(second) == ["invalid_timestamp"]
    assert "line 6 of" in str(second.errors[0])


def test_csv_each_rejected_value_is_counted(tmp_path: Path) -> None:
    lines = ["timestamp,value", "1700000000,1"]
    lines += [f"{1_700_000_060 + n},N/A" for n in range(6)]
    source = csv_source(tmp_path, "\n".join(lines) + "\n")

    result = source.poll(NOW)

    assert [sample.value for sample in result.samples] == [1.0]
    assert reasons(result) == ["invalid_value"] * 6
    summary = str(result.errors[0])
    assert summary.startswith("KPI 'orders': rejected 6 rows (line 3 of ")
    assert "has value 'N/A', not a finite number" in summary
    assert summary.endswith("; and 3 more).")


def test_spreadsheet_xlsx_empty_label_cell_names_row(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in [
        ["timestamp", "region", "value"],
        ["2024-01-01", "eu", 1],
        [None, None, None],
        ["2024-01-02", None, 2],
    ]:
        sheet.append(row)
    workbook.save(tmp_path / "week.xlsx")

    result = folder_source(tmp_path, "*.xlsx", label_columns=("region",)).poll(NOW)

    assert [sample.value for sample in result.samples] == [1.0]
    assert reasons(result) == ["invalid_label"]
    assert "line 4 of" in str(result.errors[0])


@pytest.mark.parametrize(
    "settings_class", [CsvSettings, SpreadsheetSettings], ids=["csv", "spreadsheet"]
)
@pytest.mark.parametrize("delimiter", ["", ";;"], ids=["empty", "two-characters"])
def test_settings_reject_delimiter_not_one_character(
    tmp_path: Path, settings_class: type, delimiter: str
) -> None:
    location = {"path": tmp_path} if settings_class is CsvSettings else {}
    location = location or {"folder": tmp_path}
    with pytest.raises(FieldValueError, match="set one character") as raised:
        settings_class(delimiter=delimiter, **location)
    assert raised.value.field == "delimiter"


def test_csv_semicolon_delimiter_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('timestamp;region;value\n1700000000;"eu; west";5\n')
    settings = CsvSettings(path=path, delimiter=";")
    config = SourceConfig(name="file", type="csv", settings=settings)
    kpi = KPIConfig(
        name="orders", source="file", query=CsvQuery(label_columns=("region",))
    )
    source: Source = CsvSource(config, [kpi], make_context(tmp_path))

    result = source.poll(NOW)

    assert result.errors == []
    assert [sample.key.labels for sample in result.samples] == [
        (("region", "eu; west"),)
    ]


def test_csv_not_utf8_fails_poll(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"timestamp,value\n1700000000,\xff\n")
    config = SourceConfig(name="file", type="csv", settings=CsvSettings(path=path))
    kpi = KPIConfig(name="orders", source="file", query=CsvQuery())

    result = CsvSource(config, [kpi], make_context(tmp_path)).poll(NOW)

    assert result.failed
    assert reasons(result) == ["invalid_csv"]
    assert "is not UTF-8; save the file as UTF-8" in str(result.errors[0])


def test_summarize_rejections_groups_by_reason() -> None:
    rejections = [
        SourceError("invalid_value", "row 1 is bad"),
        SourceError("invalid_label", "row 2 has no label"),
        SourceError("invalid_value", "row 3 is bad"),
    ]

    problems = summarize_rejections("KPI 'k'", rejections)

    assert [problem.reason for problem in problems] == [
        "invalid_value",
        "invalid_value",
        "invalid_label",
    ]
    assert str(problems[0]) == (
        "KPI 'k': rejected 2 rows (row 1 is bad; row 3 is bad)."
    )
    assert problems[1] is rejections[2]
    assert str(problems[2]) == "KPI 'k': rejected 1 row (row 2 has no label)."


def test_partial_read_error_keeps_samples_and_problems() -> None:
    error = PartialReadError([], [SourceError("invalid_timestamp", "t")], "k")

    assert error.reason == "invalid_timestamp"
    assert str(error) == "KPI 'k': rejected 1 row (t)."
    assert [problem.reason for problem in error.problems] == ["invalid_timestamp"]
