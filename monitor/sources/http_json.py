"""The ``http_json`` source: one request per poll, JMESPath per KPI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import jmespath
import jmespath.exceptions

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources.base import (
    MAX_RESPONSE_BYTES,
    PartialReadError,
    Source,
    check_value,
    http_get_json,
)
from monitor.sources.timestamps import parse_timestamp


@dataclass(frozen=True, kw_only=True)
class HttpJsonSettings:
    url: Secret
    method: str = "GET"
    headers: Mapping[str, Secret] = field(default_factory=dict)
    body: Mapping[str, str] | None = None
    max_response_bytes: int = MAX_RESPONSE_BYTES


@dataclass(frozen=True, kw_only=True)
class HttpJsonQuery:
    value: str
    items: str | None = None
    timestamp: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class HttpJsonSource(Source):
    """Request a JSON document and read KPI values from it with JMESPath."""

    settings_class: ClassVar[type] = HttpJsonSettings
    query_class: ClassVar[type] = HttpJsonQuery

    _document: Any = None

    @property
    def settings(self) -> HttpJsonSettings:
        return cast(HttpJsonSettings, self.config.settings)

    def prepare(self, now: float) -> None:
        settings = self.settings
        self._document = None
        self._document = http_get_json(
            self.context.session,
            f"Source {self.name!r}",
            method=settings.method.upper(),
            url=settings.url.reveal(),
            timeout_seconds=self.timeout_seconds,
            headers={k: v.reveal() for k, v in settings.headers.items()},
            json_body=dict(settings.body) if settings.body is not None else None,
            limit=settings.max_response_bytes,
        )

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(HttpJsonQuery, kpi.query)
        items = self._search(query.items, self._document, kpi) if query.items else None
        if query.items is None:
            items = [self._document]
        if not isinstance(items, list):
            raise SourceError(
                "invalid_value",
                f"KPI {kpi.name!r}: items expression {query.items!r} did not select "
                "a list.",
            )
        if not items:
            raise SourceError(
                "empty_result", f"KPI {kpi.name!r}: the response holds no items."
            )

        samples: list[Sample] = []
        errors: list[SourceError] = []
        for item in items:
            try:
                samples.append(self._sample(kpi, query, item, now))
            except SourceError as error:
                errors.append(error)
        if errors and not samples:
            raise errors[0]
        if errors:
            raise PartialReadError(samples, len(errors), kpi.name)
        return samples

    def _sample(
        self, kpi: KPIConfig, query: HttpJsonQuery, item: Any, now: float
    ) -> Sample:
        what = f"KPI {kpi.name!r}: value {query.value!r}"
        value = check_value(self._search(query.value, item, kpi), what)
        timestamp = now
        if query.timestamp:
            raw = self._search(query.timestamp, item, kpi)
            timestamp = parse_timestamp(raw, f"KPI {kpi.name!r}: timestamp")
        labels = {
            name: self._label(kpi, name, self._search(expression, item, kpi))
            for name, expression in query.labels.items()
        }
        return Sample(SeriesKey(kpi.name, make_labels(labels)), timestamp, value)

    @staticmethod
    def _label(kpi: KPIConfig, name: str, raw: Any) -> str:
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return str(raw)
        raise SourceError(
            "invalid_label",
            f"KPI {kpi.name!r}: label {name!r} is {raw!r}, not a string or integer.",
        )

    @staticmethod
    def _search(expression: str, document: Any, kpi: KPIConfig) -> Any:
        try:
            return jmespath.search(expression, document)
        except jmespath.exceptions.JMESPathError as error:
            raise SourceError(
                "invalid_expression",
                f"KPI {kpi.name!r}: JMESPath {expression!r} failed: {error}.",
            ) from None
