"""The ``http_json`` source: one request (or a few pages) per poll, JMESPath per KPI.

Pagination follows either a next-page URL that a JMESPath expression selects
in each page, or a page-number query parameter that counts up until a page
has no items. Both stop after ``max_pages`` pages.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, ClassVar, cast

import jmespath
import jmespath.exceptions

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources._http import (
    HttpOptions,
    check_http_url,
    decode_json,
    http_request,
)
from monitor.sources.base import PartialReadError, Source, SourceSettings, check_value
from monitor.sources.timestamps import check_timezone, parse_timestamp, time_zone

DEFAULT_MAX_PAGES = 10


@dataclass(frozen=True, kw_only=True)
class PaginationSettings:
    """How to find the pages after the first; set one of the two modes."""

    next_url: str | None = None
    """JMESPath selecting the next page's URL, absolute or relative to the
    current one; a null or empty result ends the pages."""
    page_parameter: str | None = None
    """Query parameter holding the page number, counted up from
    ``first_page`` until ``page_items`` selects an empty list."""
    first_page: int = 1
    page_items: str | None = None
    """JMESPath selecting the items of one page, for ``page_parameter``."""
    max_pages: int = DEFAULT_MAX_PAGES

    def __post_init__(self) -> None:
        if (self.next_url is None) == (self.page_parameter is None):
            raise ValueError(
                "Set exactly one of pagination.next_url and pagination.page_parameter."
            )
        if self.page_parameter is not None and self.page_items is None:
            raise ValueError(
                "pagination.page_parameter needs pagination.page_items, the "
                "JMESPath that selects the items of one page."
            )
        if self.max_pages < 1:
            raise ValueError(
                f"pagination.max_pages is {self.max_pages}; set 1 or more."
            )


@dataclass(frozen=True, kw_only=True)
class HttpJsonSettings(HttpOptions, SourceSettings):
    url: Secret
    method: str = "GET"
    body: Mapping[str, str] | None = None
    pagination: PaginationSettings | None = None
    timezone: str = "UTC"
    """IANA time zone of naive ISO timestamps."""

    def __post_init__(self) -> None:
        check_http_url("url", self.url)
        check_timezone(self.timezone)


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

    @property
    def aligned_samples(self) -> bool:
        return all(getattr(kpi.query, "timestamp", None) is None for kpi in self.kpis)

    _documents: list[Any]

    @property
    def settings(self) -> HttpJsonSettings:
        return cast(HttpJsonSettings, self.config.settings)

    def prepare(self, now: float) -> None:
        self._documents = []
        pagination = self.settings.pagination
        if pagination is None:
            self._documents = [self._request(self.settings.url.reveal(), None)]
            return
        if pagination.next_url is not None:
            self._follow_next_urls(pagination, pagination.next_url)
        else:
            self._count_pages(pagination, cast(str, pagination.page_parameter))

    def _request(self, url: str, params: Mapping[str, str] | None) -> Any:
        settings = self.settings
        reply = http_request(
            self.context.session,
            f"Source {self.name!r}",
            method=settings.method.upper(),
            url=url,
            timeout_seconds=self.timeout_seconds,
            options=settings,
            ca_path=self.ca_path(settings),
            params=params,
            json_body=dict(settings.body) if settings.body is not None else None,
        )
        return decode_json(reply, f"Source {self.name!r}")

    def _follow_next_urls(
        self, pagination: PaginationSettings, expression: str
    ) -> None:
        url = self.settings.url.reveal()
        seen = {url}
        while True:
            document = self._request(url, None)
            self._documents.append(document)
            following = _search(expression, document, f"Source {self.name!r}")
            if following in (None, ""):
                return
            if not isinstance(following, str):
                raise SourceError(
                    "invalid_response",
                    f"Source {self.name!r}: pagination.next_url {expression!r} "
                    f"selected {type(following).__name__}, not a URL.",
                )
            url = urllib.parse.urljoin(url, following)
            if url in seen:
                return
            if len(self._documents) >= pagination.max_pages:
                self._page_limit_reached(pagination)
                return
            seen.add(url)

    def _count_pages(self, pagination: PaginationSettings, parameter: str) -> None:
        expression = cast(str, pagination.page_items)
        page = pagination.first_page
        while True:
            document = self._request(self.settings.url.reveal(), {parameter: str(page)})
            items = _search(expression, document, f"Source {self.name!r}")
            if not items:
                return
            self._documents.append(document)
            if len(self._documents) >= pagination.max_pages:
                self._page_limit_reached(pagination)
                return
            page += 1

    def _page_limit_reached(self, pagination: PaginationSettings) -> None:
        self.notices.append(
            SourceError(
                "page_limit",
                f"Source {self.name!r} stopped after {pagination.max_pages} pages "
                "while more remain; raise pagination.max_pages or narrow the "
                "request.",
            )
        )

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(HttpJsonQuery, kpi.query)
        what = f"KPI {kpi.name!r}"
        items: list[Any] = []
        for document in self._documents:
            if query.items is None:
                items.append(document)
                continue
            selected = _search(query.items, document, what)
            if not isinstance(selected, list):
                raise SourceError(
                    "invalid_value",
                    f"{what}: items expression {query.items!r} did not select a list.",
                )
            items.extend(selected)
        if not items:
            raise SourceError(
                "empty_result", f"{what}: the response contains no items."
            )

        zone = time_zone(self.settings.timezone, self.name)
        samples: list[Sample] = []
        errors: list[SourceError] = []
        for item in items:
            try:
                samples.append(self._sample(kpi, query, item, now, zone))
            except SourceError as error:
                errors.append(error)
        if errors and not samples:
            raise errors[0]
        if errors:
            raise PartialReadError(samples, errors, kpi.name)
        return samples

    def _sample(
        self,
        kpi: KPIConfig,
        query: HttpJsonQuery,
        item: Any,
        now: float,
        zone: tzinfo,
    ) -> Sample:
        what = f"KPI {kpi.name!r}"
        value = check_value(
            _search(query.value, item, what), f"{what}: value {query.value!r}"
        )
        timestamp = now
        if query.timestamp:
            raw = _search(query.timestamp, item, what)
            timestamp = parse_timestamp(raw, f"{what}: timestamp", zone)
        labels = {
            name: _label(kpi, name, _search(expression, item, what))
            for name, expression in query.labels.items()
        }
        return Sample(SeriesKey(kpi.name, make_labels(labels)), timestamp, value)


def _label(kpi: KPIConfig, name: str, raw: Any) -> str:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        return str(raw)
    raise SourceError(
        "invalid_label",
        f"KPI {kpi.name!r}: label {name!r} is {raw!r}, not a string or integer.",
    )


def _search(expression: str, document: Any, what: str) -> Any:
    try:
        return jmespath.search(expression, document)
    except jmespath.exceptions.JMESPathError as error:
        raise SourceError(
            "invalid_expression",
            f"{what}: JMESPath {expression!r} failed: {error}.",
        ) from None
