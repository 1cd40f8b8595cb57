"""The source interface and checks shared by every source type."""

from __future__ import annotations

import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.series import Sample, SeriesKey, make_labels
from monitor.sources._http import (
    MAX_RESPONSE_BYTES,
    HttpOptions,
    http_get_json,
    read_limited,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "PartialReadError",
    "PollResult",
    "Source",
    "SourceContext",
    "SourceSettings",
    "check_value",
    "http_get_json",
    "read_limited",
    "summarize_rejections",
]


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """Settings that every source type accepts besides its own."""

    delay: timedelta = timedelta(0)
    """Samples newer than the poll time minus ``delay`` are held back until
    they are older, so a period that is still closing is not read as a drop.
    A newer read of the same series and timestamp replaces a held sample.
    With the default of zero nothing is held, not even future timestamps."""
    failing_for: timedelta | None = None
    """How long the source must fail before ``KrwatchSourceFailing`` fires;
    ``None`` means three poll intervals."""


@dataclass(frozen=True, kw_only=True)
class SourceContext:
    """Services a source may use besides its own configuration."""

    config: Config
    session: requests.Session
    meta_get: Callable[[str], str | None]
    meta_set: Callable[[str, str], None]
    last_timestamps: dict[str, float] = field(default_factory=dict)
    """Newest stored sample time per KPI name, so a restart reads on."""
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, kw_only=True)
class PollResult:
    """Samples and problems of one poll.

    ``failed`` is true when the poll as a whole failed: the shared request
    failed, or every KPI of the source raised an error. Problems such as
    rejected rows or repeated timestamps leave ``failed`` false.
    """

    samples: list[Sample]
    errors: list[SourceError]
    failed: bool = False
    held_back: int = 0
    """Samples read in this or earlier polls that wait for the source's delay."""


class Source(ABC):
    """One configured source with the KPIs that read from it.

    A subclass sets ``settings_class`` and ``query_class`` (frozen dataclasses
    that the config loader fills) and implements ``fetch``. Problems that
    do not fail a KPI, such as a page limit reached, go to ``notices``.
    """

    settings_class: ClassVar[type]
    query_class: ClassVar[type]

    def __init__(
        self, config: SourceConfig, kpis: Sequence[KPIConfig], context: SourceContext
    ) -> None:
        self.config = config
        self.kpis = tuple(kpis)
        self.context = context
        self.notices: list[SourceError] = []
        self._held: dict[tuple[SeriesKey, float], Sample] = self._load_held()

    @property
    def aligned_samples(self) -> bool:
        """Whether every sample of a poll carries the poll time.

        Such sources keep their series in one dense block, which the batch
        evaluator reads as a matrix. Sources with their own timestamps do not.
        """
        return False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def timeout_seconds(self) -> float:
        return self.config.timeout.total_seconds()

    @property
    def delay_seconds(self) -> float:
        settings = self.config.settings
        if isinstance(settings, SourceSettings):
            return settings.delay.total_seconds()
        return 0.0

    @property
    def failing_for_seconds(self) -> float:
        """Seconds of failure before the source alert fires."""
        settings = self.config.settings
        if isinstance(settings, SourceSettings) and settings.failing_for is not None:
            return settings.failing_for.total_seconds()
        return FAILING_INTERVALS * self.config.interval.total_seconds()

    def ca_path(self, options: HttpOptions) -> Path | None:
        """Return the CA bundle of ``options`` resolved against the config folder."""
        if options.ca_file is None:
            return None
        return self.context.config.resolve(options.ca_file)

    def poll(self, now: float) -> PollResult:
        """Fetch every KPI of this source, isolating failures per KPI."""
        self.notices = []
        try:
            self.prepare(now)
        except SourceError as error:
            return PollResult(samples=self._release(now), errors=[error], failed=True)

        samples: list[Sample] = []
        errors: list[SourceError] = []
        failed_kpis = 0
        for kpi in self.kpis:
            try:
                samples.extend(self.fetch(kpi, now))
            except PartialReadError as error:
                samples.extend(error.samples)
                errors.extend(error.problems)
            except SourceError as error:
                errors.append(error)
                failed_kpis += 1

        samples, duplicates = _drop_duplicates(samples)
        if duplicates:
            errors.append(
                SourceError(
                    "duplicate_timestamp",
                    f"{duplicates} samples repeat the series and timestamp of "
                    "another sample in the same poll; the last of each was kept.",
                )
            )
        errors.extend(self.notices)
        if self.delay_seconds > 0:
            for sample in samples:
                self._held[(sample.key, sample.timestamp)] = sample
            samples = self._release(now)
        return PollResult(
            samples=samples,
            errors=errors,
            failed=bool(self.kpis) and failed_kpis == len(self.kpis),
            held_back=len(self._held),
        )

    def _release(self, now: float) -> list[Sample]:
        """Return and forget the held samples that are older than the delay."""
        cutoff = now - self.delay_seconds
        due = [key for key in self._held if key[1] <= cutoff]
        released = [self._held.pop(key) for key in due]
        if self.delay_seconds > 0:
            self._save_held()
        return released

    @property
    def _held_key(self) -> str:
        return f"source_held:{self.config.name}"

    def _save_held(self) -> None:
        """Store the held samples, so a restart or reload keeps them."""
        rows = [
            [sample.key.kpi, list(sample.key.labels), sample.timestamp, sample.value]
            for sample in self._held.values()
        ]
        self.context.meta_set(self._held_key, json.dumps(rows))

    def _load_held(self) -> dict[tuple[SeriesKey, float], Sample]:
        if self.delay_seconds <= 0:
            return {}
        text = self.context.meta_get(self._held_key)
        if text is None:
            return {}
        try:
            samples = [
                Sample(
                    SeriesKey(kpi, make_labels(dict(labels))),
                    float(timestamp),
                    float(value),
                )
                for kpi, labels, timestamp, value in json.loads(text)
            ]
        except (TypeError, ValueError) as error:
            logger.warning(
                "Source %s: the stored held-back samples are unreadable (%s); "
                "starting without them.",
                self.config.name,
                error,
            )
            return {}
        return {(sample.key, sample.timestamp): sample for sample in samples}

    def close(self) -> None:
        """Release connections or files; the daemon calls it before rebuilding."""
        return None

    def prepare(self, now: float) -> None:
        """Do the work shared by all KPIs of one poll, such as one request."""
        return None

    @abstractmethod
    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        """Return new samples of ``kpi``; raise ``SourceError`` on failure."""


FAILING_INTERVALS = 3
"""Poll intervals of failure after which the source alert fires by default."""


def _drop_duplicates(samples: list[Sample]) -> tuple[list[Sample], int]:
    """Keep the last sample of each series and timestamp; count the others."""
    unique: dict[tuple[SeriesKey, float], Sample] = {}
    for sample in samples:
        unique[(sample.key, sample.timestamp)] = sample
    return list(unique.values()), len(samples) - len(unique)


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
        try:
            # Decimal from SQL drivers and numpy scalars convert exactly enough.
            value = float(raw)
        except (TypeError, ValueError):
            raise SourceError(
                "invalid_value", f"{what} is a {type(raw).__name__}, not a number."
            ) from None
    if not math.isfinite(value):
        raise SourceError("invalid_value", f"{what} is {value!r}, not a finite number.")
    return value


ROW_EXAMPLES = 3
"""Rejected rows whose messages a summary quotes; the rest are only counted."""


def summarize_rejections(
    subject: str, rejections: Sequence[SourceError]
) -> list[SourceError]:
    """Return one error per rejected row, the first of each reason a summary.

    The daemon counts every returned error and logs only the first of each
    reason, rate limited. So the summary quotes the first ``ROW_EXAMPLES``
    rows, with their line numbers where the source has them.
    """
    by_reason: dict[str, list[SourceError]] = {}
    for rejection in rejections:
        by_reason.setdefault(rejection.reason, []).append(rejection)

    problems: list[SourceError] = []
    for reason, group in by_reason.items():
        examples = "; ".join(str(error) for error in group[:ROW_EXAMPLES])
        more = len(group) - ROW_EXAMPLES
        if more > 0:
            examples += f"; and {more} more"
        noun = "row" if len(group) == 1 else "rows"
        problems.append(
            SourceError(
                reason, f"{subject}: rejected {len(group)} {noun} ({examples})."
            )
        )
        problems.extend(group[1:])
    return problems


class PartialReadError(SourceError):
    """Some rows of a fetch were rejected; the good samples still count.

    Parameters
    ----------
    samples : list of Sample
        The samples of the rows that were read.
    rejections : sequence of SourceError
        One error per rejected row, each with its own reason.
    kpi : str
        Name of the KPI that was fetched.
    """

    def __init__(
        self, samples: list[Sample], rejections: Sequence[SourceError], kpi: str
    ) -> None:
        self.problems = summarize_rejections(f"KPI {kpi!r}", rejections)
        """The errors to count, one per rejected row."""
        first = self.problems[0] if self.problems else None
        super().__init__(
            first.reason if first else "invalid_value",
            str(first) if first else f"KPI {kpi!r}: rejected no rows.",
        )
        self.samples = samples
