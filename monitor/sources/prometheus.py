"""The ``prometheus`` source: instant queries, and range queries to backfill.

With ``backfill``, the first poll of each KPI reads its history through
``/api/v1/query_range`` from the newest stored sample (or ``backfill`` ago,
whichever is later) to the poll time, at ``step`` resolution. Later polls
run instant queries. Long ranges are split so that no request covers more
than ``MAX_POINTS_PER_REQUEST`` steps, below Prometheus' limit of 11,000
points per series.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, cast

from monitor.config.model import KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources._http import (
    HttpOptions,
    check_http_url,
    decode_json,
    http_request,
)
from monitor.sources.base import (
    PartialReadError,
    Source,
    SourceContext,
    SourceSettings,
    check_value,
)

logger = logging.getLogger(__name__)

MAX_POINTS_PER_REQUEST = 10_000


@dataclass(frozen=True, kw_only=True)
class PrometheusSettings(HttpOptions, SourceSettings):
    url: str
    backfill: timedelta | None = None
    """History to read with range queries on the first poll of each KPI."""
    step: timedelta = timedelta(minutes=5)
    """Resolution of backfill range queries."""

    def __post_init__(self) -> None:
        check_http_url("url", self.url)
        if self.step.total_seconds() <= 0:
            raise ValueError(f"step is {self.step}; set a positive duration.")


@dataclass(frozen=True, kw_only=True)
class PrometheusQuery:
    promql: str


class PrometheusSource(Source):
    """Run ``/api/v1/query``; each result label set becomes one series."""

    settings_class: ClassVar[type] = PrometheusSettings
    query_class: ClassVar[type] = PrometheusQuery

    @property
    def aligned_samples(self) -> bool:
        return True

    def __init__(
        self, config: SourceConfig, kpis: Sequence[KPIConfig], context: SourceContext
    ) -> None:
        super().__init__(config, kpis, context)
        self._backfilled: set[str] = set()

    @property
    def settings(self) -> PrometheusSettings:
        return cast(PrometheusSettings, self.config.settings)

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        backfill = self.settings.backfill
        if backfill is not None and kpi.name not in self._backfilled:
            samples = self._backfill(kpi, now, backfill.total_seconds())
            self._backfilled.add(kpi.name)
            if samples:
                return samples

        return self._instant(kpi, now)

    def _get(self, path: str, params: Mapping[str, str], what: str) -> dict[str, Any]:
        reply = http_request(
            self.context.session,
            what,
            method="GET",
            url=self.settings.url.rstrip("/") + path,
            timeout_seconds=self.timeout_seconds,
            options=self.settings,
            ca_path=self.ca_path(self.settings),
            params=params,
        )
        return _result_data(decode_json(reply, what), what)

    def _instant(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(PrometheusQuery, kpi.query)
        what = f"Source {self.name!r} query of KPI {kpi.name!r}"
        data = self._get(
            "/api/v1/query", {"query": query.promql, "time": f"{now:.3f}"}, what
        )
        result_type = data.get("resultType")
        result = data.get("result")
        if result_type == "scalar":
            return [_sample(kpi, {}, result, what)]
        if result_type != "vector" or not isinstance(result, list):
            raise SourceError(
                "invalid_response",
                f"{what} returned result type {result_type!r}; write an instant "
                "query that returns a vector or scalar.",
            )
        if not result:
            raise SourceError("empty_result", f"{what} returned no series.")

        return _collect(
            kpi,
            [
                (element, [element.get("value")] if isinstance(element, dict) else None)
                for element in result
            ],
            what,
        )

    def _backfill(self, kpi: KPIConfig, now: float, seconds: float) -> list[Sample]:
        """Read the history of ``kpi`` with range queries, oldest first."""
        query = cast(PrometheusQuery, kpi.query)
        step = self.settings.step.total_seconds()
        newest = self.context.last_timestamps.get(kpi.name, -math.inf)
        start = max(now - seconds, newest + step)
        what = f"Source {self.name!r} backfill of KPI {kpi.name!r}"
        samples: list[Sample] = []
        chunk = step * MAX_POINTS_PER_REQUEST
        while start <= now:
            end = min(start + chunk, now)
            params = {
                "query": query.promql,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step:g}",
            }
            data = self._get("/api/v1/query_range", params, what)
            if data.get("resultType") != "matrix" or not isinstance(
                data.get("result"), list
            ):
                raise SourceError(
                    "invalid_response",
                    f"{what} returned result type {data.get('resultType')!r}, not a "
                    "matrix.",
                )
            elements = [
                (element, element.get("values"))
                for element in data["result"]
                if isinstance(element, dict)
            ]
            if elements:
                samples.extend(_collect(kpi, elements, what))
            start = end + step
        logger.info(
            "Backfilled %d samples of KPI %s from source %s",
            len(samples),
            kpi.name,
            self.name,
        )
        return samples


def _collect(
    kpi: KPIConfig, elements: list[tuple[Any, Any]], what: str
) -> list[Sample]:
    """Turn (series element, list of [time, value] pairs) into samples."""
    samples: list[Sample] = []
    errors: list[SourceError] = []
    for element, pairs in elements:
        metric = element.get("metric", {}) if isinstance(element, dict) else None
        if not isinstance(metric, dict) or not isinstance(pairs, list):
            errors.append(SourceError("invalid_response", f"{what}: malformed series."))
            continue
        for pair in pairs:
            try:
                samples.append(_sample(kpi, metric, pair, what))
            except SourceError as error:
                errors.append(error)
    if errors and not samples:
        raise errors[0]
    if errors:
        raise PartialReadError(samples, errors, kpi.name)
    return samples


def _sample(kpi: KPIConfig, metric: Mapping[str, str], pair: Any, what: str) -> Sample:
    if not isinstance(pair, list) or len(pair) != 2:
        raise SourceError("invalid_response", f"{what}: malformed sample {pair!r}.")
    labels = {k: v for k, v in metric.items() if k != "__name__"}
    value = check_value(pair[1], f"{what} value")
    timestamp = check_value(pair[0], f"{what} timestamp")
    return Sample(SeriesKey(kpi.name, make_labels(labels)), timestamp, value)


def _result_data(document: Any, what: str) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("status") != "success":
        error = document.get("error") if isinstance(document, dict) else None
        raise SourceError(
            "query_failed", f"{what} failed: {str(error or document)[:200]}."
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise SourceError("invalid_response", f"{what} returned no data object.")
    return data
