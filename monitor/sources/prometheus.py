"""The ``prometheus`` source: an instant query per KPI against the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import PartialReadError, Source, check_value, http_get_json


@dataclass(frozen=True, kw_only=True)
class PrometheusSettings:
    url: str
    headers: Mapping[str, Secret] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PrometheusQuery:
    promql: str


class PrometheusSource(Source):
    """Run ``/api/v1/query``; each result label set becomes one series."""

    settings_class: ClassVar[type] = PrometheusSettings
    query_class: ClassVar[type] = PrometheusQuery

    @property
    def settings(self) -> PrometheusSettings:
        return cast(PrometheusSettings, self.config.settings)

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(PrometheusQuery, kpi.query)
        what = f"Source {self.name!r} query of KPI {kpi.name!r}"
        document = http_get_json(
            self.context.session,
            what,
            method="GET",
            url=self.settings.url.rstrip("/") + "/api/v1/query",
            params={"query": query.promql, "time": f"{now:.3f}"},
            timeout_seconds=self.timeout_seconds,
            headers={k: v.reveal() for k, v in self.settings.headers.items()},
        )
        data = _result_data(document, what)
        result_type = data.get("resultType")
        result = data.get("result")
        if result_type == "scalar":
            return [self._sample(kpi, {}, result, what)]
        if result_type != "vector" or not isinstance(result, list):
            raise SourceError(
                "invalid_response",
                f"{what} returned result type {result_type!r}; write an instant "
                "query that returns a vector or scalar.",
            )
        if not result:
            raise SourceError("empty_result", f"{what} returned no series.")

        samples: list[Sample] = []
        errors: list[SourceError] = []
        for element in result:
            try:
                samples.append(
                    self._sample(kpi, element.get("metric", {}), element["value"], what)
                )
            except (SourceError, KeyError, TypeError, AttributeError) as error:
                errors.append(
                    error
                    if isinstance(error, SourceError)
                    else SourceError("invalid_response", f"{what}: malformed element.")
                )
        if errors and not samples:
            raise errors[0]
        if errors:
            raise PartialReadError(samples, len(errors), kpi.name)
        return samples

    @staticmethod
    def _sample(
        kpi: KPIConfig, metric: Mapping[str, str], pair: Any, what: str
    ) -> Sample:
        if not isinstance(pair, list) or len(pair) != 2:
            raise SourceError("invalid_response", f"{what}: malformed sample {pair!r}.")
        labels = {k: v for k, v in metric.items() if k != "__name__"}
        value = check_value(pair[1], f"{what} value")
        return Sample(SeriesKey(kpi.name, make_labels(labels)), float(pair[0]), value)


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
