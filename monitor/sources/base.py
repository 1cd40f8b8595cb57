"""The source interface and checks shared by every source type."""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.series import Sample

MAX_RESPONSE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SourceContext:
    """What a source may use besides its own configuration."""

    config: Config
    session: requests.Session
    meta_get: Callable[[str], str | None]
    meta_set: Callable[[str, str], None]
    last_timestamps: dict[str, float] = field(default_factory=dict)
    """Newest stored sample time per KPI name, so a restart reads on."""
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, kw_only=True)
class PollResult:
    samples: list[Sample]
    errors: list[SourceError]


class Source(ABC):
    """One configured source with the KPIs that read from it.

    A subclass sets ``settings_class`` and ``query_class`` (frozen dataclasses
    that the config loader fills) and implements ``fetch``.
    """

    settings_class: ClassVar[type]
    query_class: ClassVar[type]

    def __init__(
        self, config: SourceConfig, kpis: Sequence[KPIConfig], context: SourceContext
    ) -> None:
        self.config = config
        self.kpis = tuple(kpis)
        self.context = context

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def timeout_seconds(self) -> float:
        return self.config.timeout.total_seconds()

    def poll(self, now: float) -> PollResult:
        """Fetch every KPI of this source, isolating failures per KPI."""
        samples: list[Sample] = []
        errors: list[SourceError] = []
        try:
            self.prepare(now)
        except SourceError as error:
            return PollResult(samples=[], errors=[error])

        for kpi in self.kpis:
            try:
                samples.extend(self.fetch(kpi, now))
            except PartialReadError as error:
                samples.extend(error.samples)
                errors.append(error)
            except SourceError as error:
                errors.append(error)
        return PollResult(samples=samples, errors=errors)

    def prepare(self, now: float) -> None:
        """Do the work shared by all KPIs of one poll, such as one request."""
        return None

    @abstractmethod
    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        """Return new samples of ``kpi``; raise ``SourceError`` on failure."""


def check_value(raw: Any, what: str) -> float:
    """Convert a fetched value to a finite float or raise ``SourceError``.

    Numbers and numeric strings are accepted; ``None``, booleans, other
    strings, NaN and infinities are rejected.
    """
    if raw is None:
        raise SourceError("invalid_value", f"{what} is null, not a number.")
    if isinstance(raw, bool):
        raise SourceError("invalid_value", f"{what} is a boolean ({raw!r}).")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise SourceError(
                "invalid_value", f"{what} is the string {raw[:80]!r}, not a number."
            ) from None
    else:
        raise SourceError(
            "invalid_value", f"{what} is a {type(raw).__name__}, not a number."
        )
    if not math.isfinite(value):
        raise SourceError("invalid_value", f"{what} is {value!r}, not a finite number.")
    return value


def read_limited(response: requests.Response, limit: int, what: str) -> bytes:
    """Read a streamed response body, failing once it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > limit:
            response.close()
            raise SourceError(
                "response_too_large",
                f"{what} returned more than {limit} bytes; raise max_response_bytes "
                "or narrow the request.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def http_get_json(
    session: requests.Session,
    what: str,
    *,
    method: str,
    url: str,
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    json_body: Any = None,
    limit: int = MAX_RESPONSE_BYTES,
) -> Any:
    """Send one request and decode a JSON body, mapping failures to reasons."""
    try:
        response = session.request(
            method,
            url,
            headers=headers,
            params=params,
            json=json_body,
            timeout=timeout_seconds,
            stream=True,
        )
    except requests.Timeout:
        raise SourceError(
            "timeout", f"{what} timed out after {timeout_seconds:g}s."
        ) from None
    except requests.RequestException as error:
        raise SourceError(
            "connection", f"{what} failed: {type(error).__name__}."
        ) from None

    with response:
        try:
            body = read_limited(response, limit, what)
        except requests.RequestException:
            raise SourceError(
                "connection", f"{what} failed while reading the response."
            ) from None
        if not 200 <= response.status_code < 300:
            raise SourceError(
                "http_status", f"{what} returned HTTP {response.status_code}."
            )

        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            kind = response.headers.get("Content-Type", "unknown content type")
            raise SourceError(
                "invalid_json",
                f"{what} did not return valid JSON (content type {kind!r}, "
                f"body starts {body[:40]!r}).",
            ) from None


class PartialReadError(SourceError):
    """Some rows of a fetch were rejected; the good samples still count."""

    def __init__(self, samples: list[Sample], rejected: int, kpi: str) -> None:
        super().__init__(
            "invalid_value",
            f"KPI {kpi!r}: rejected {rejected} rows whose value is not a finite "
            "number.",
        )
        self.samples = samples
