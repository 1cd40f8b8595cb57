"""The ``jira`` source: issue counts and field sums for a JQL query.

Three API shapes are supported, chosen by ``api``:

- ``cloud``: Jira Cloud's ``GET /rest/api/3/search/jql``, paged with
  ``nextPageToken`` until a page has no token or sets ``isLast``. It returns
  no total, so counts page through the issues too.
- ``cloud_legacy``: Jira Cloud's older ``GET /rest/api/3/search``, paged with
  ``startAt`` and ``maxResults`` against ``total``.
- ``data_center``: Jira Data Center and Server, ``GET /rest/api/2/search``,
  the same shape as ``cloud_legacy``.

With ``startAt`` paging, a count requests ``maxResults=0`` and reads
``total``, so it costs one request. Cloud authenticates with the account's
e-mail as ``username`` and an API token as ``password`` (basic auth); Data
Center accepts a personal access token as ``bearer_token``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from monitor.config.model import KPIConfig
from monitor.errors import SourceError
from monitor.series import Sample, SeriesKey
from monitor.sources._http import (
    HttpOptions,
    check_http_url,
    decode_json,
    http_request,
)
from monitor.sources.base import Source, SourceSettings, check_value

DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 100
_BAD_REQUEST = 400

_SEARCH_PATHS = {
    "cloud": "/rest/api/3/search/jql",
    "cloud_legacy": "/rest/api/3/search",
    "data_center": "/rest/api/2/search",
}


@dataclass(frozen=True, kw_only=True)
class JiraSettings(HttpOptions, SourceSettings):
    url: str
    """Base URL of the site, such as ``https://example.atlassian.net``."""
    api: Literal["cloud", "cloud_legacy", "data_center"] = "cloud"
    page_size: int = DEFAULT_PAGE_SIZE
    """Issues per request (``maxResults``); Jira may return fewer."""
    max_pages: int = DEFAULT_MAX_PAGES
    """A query that needs more requests fails instead of giving a partial
    count or sum."""

    def __post_init__(self) -> None:
        check_http_url("url", self.url)
        if self.page_size < 1:
            raise ValueError(f"page_size is {self.page_size}; set 1 or more.")
        if self.max_pages < 1:
            raise ValueError(f"max_pages is {self.max_pages}; set 1 or more.")


@dataclass(frozen=True, kw_only=True)
class JiraQuery:
    jql: str
    aggregate: Literal["count", "sum"] = "count"
    field: str | None = None
    """Numeric field to sum, such as ``customfield_10016`` for story points;
    issues where it is empty add nothing."""

    def __post_init__(self) -> None:
        if self.aggregate == "sum" and not self.field:
            raise ValueError("aggregate 'sum' needs field, the numeric field to sum.")


class JiraSource(Source):
    """Count the issues of a JQL query, or sum one numeric field over them."""

    settings_class: ClassVar[type] = JiraSettings
    query_class: ClassVar[type] = JiraQuery

    @property
    def aligned_samples(self) -> bool:
        return True

    @property
    def settings(self) -> JiraSettings:
        return cast(JiraSettings, self.config.settings)

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        query = cast(JiraQuery, kpi.query)
        what = f"Source {self.name!r} search of KPI {kpi.name!r}"
        if self.settings.api == "cloud":
            value = self._token_pages(query, what)
        elif query.aggregate == "count":
            value = self._total(query, what)
        else:
            value = self._offset_pages(query, what)
        return [Sample(SeriesKey(kpi.name), now, value)]

    def _search(self, params: dict[str, str], what: str) -> dict[str, Any]:
        reply = http_request(
            self.context.session,
            what,
            method="GET",
            url=self.settings.url.rstrip("/") + _SEARCH_PATHS[self.settings.api],
            timeout_seconds=self.timeout_seconds,
            options=self.settings,
            ca_path=self.ca_path(self.settings),
            headers={"Accept": "application/json"},
            params=params,
            allowed_statuses=(_BAD_REQUEST,),
        )
        document = decode_json(reply, what)
        if reply.status == _BAD_REQUEST:
            messages = (
                document.get("errorMessages") if isinstance(document, dict) else None
            )
            detail = "; ".join(str(m) for m in messages or [])[:300] or "no detail"
            raise SourceError(
                "query_failed", f"{what} was rejected by Jira (HTTP 400): {detail}."
            )
        if not isinstance(document, dict) or not isinstance(
            document.get("issues"), list
        ):
            raise SourceError(
                "invalid_response", f"{what} returned JSON without an issues list."
            )
        return document

    def _fields(self, query: JiraQuery) -> str:
        return query.field if query.aggregate == "sum" and query.field else "id"

    def _token_pages(self, query: JiraQuery, what: str) -> float:
        total = 0.0
        token: str | None = None
        for _ in range(self.settings.max_pages):
            params = {
                "jql": query.jql,
                "maxResults": str(self.settings.page_size),
                "fields": self._fields(query),
            }
            if token is not None:
                params["nextPageToken"] = token
            page = self._search(params, what)
            total += _aggregate(page["issues"], query, what)
            token = page.get("nextPageToken")
            if not token or page.get("isLast") is True:
                return total

        raise self._too_many_pages(what)

    def _total(self, query: JiraQuery, what: str) -> float:
        params = {"jql": query.jql, "maxResults": "0", "fields": "id"}
        page = self._search(params, what)
        return check_value(page.get("total"), f"{what}: total")

    def _offset_pages(self, query: JiraQuery, what: str) -> float:
        total = 0.0
        start = 0
        for _ in range(self.settings.max_pages):
            params = {
                "jql": query.jql,
                "startAt": str(start),
                "maxResults": str(self.settings.page_size),
                "fields": self._fields(query),
            }
            page = self._search(params, what)
            issues = page["issues"]
            total += _aggregate(issues, query, what)
            start += len(issues)
            expected = check_value(page.get("total"), f"{what}: total")
            if not issues or start >= expected:
                return total

        raise self._too_many_pages(what)

    def _too_many_pages(self, what: str) -> SourceError:
        return SourceError(
            "page_limit",
            f"{what} needs more than {self.settings.max_pages} pages of "
            f"{self.settings.page_size} issues; raise max_pages or page_size, or "
            "narrow the JQL.",
        )


def _aggregate(issues: list[Any], query: JiraQuery, what: str) -> float:
    """Count ``issues`` or sum ``query.field`` over them."""
    if query.aggregate == "count":
        return float(len(issues))

    total = 0.0
    for issue in issues:
        fields = issue.get("fields") if isinstance(issue, dict) else None
        if not isinstance(fields, dict):
            raise SourceError(
                "invalid_response", f"{what} returned an issue without fields."
            )
        raw = fields.get(cast(str, query.field))
        if raw is None:
            continue
        key = issue.get("key", "?")
        total += check_value(raw, f"{what}: field {query.field!r} of issue {key}")
    return total
