"""KPI sources, one module per type, registered by type name."""

from __future__ import annotations

from monitor.sources.base import PollResult, Source, SourceContext
from monitor.sources.csv import CsvSource
from monitor.sources.http_json import HttpJsonSource
from monitor.sources.jira import JiraSource
from monitor.sources.prometheus import PrometheusSource
from monitor.sources.spreadsheet import SpreadsheetSource
from monitor.sources.sql import SqlSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "csv": CsvSource,
    "http_json": HttpJsonSource,
    "jira": JiraSource,
    "prometheus": PrometheusSource,
    "spreadsheet": SpreadsheetSource,
    "sql": SqlSource,
}

__all__ = ["SOURCE_TYPES", "PollResult", "Source", "SourceContext"]
