"""KPI sources, one module per type, registered by type name."""

from __future__ import annotations

from monitor.sources.base import PollResult, Source, SourceContext
from monitor.sources.csv import CsvSource
from monitor.sources.http_json import HttpJsonSource
from monitor.sources.prometheus import PrometheusSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "csv": CsvSource,
    "http_json": HttpJsonSource,
    "prometheus": PrometheusSource,
}

__all__ = ["SOURCE_TYPES", "PollResult", "Source", "SourceContext"]
