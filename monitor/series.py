"""Series identity and samples shared by sources, store and rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
"""A label set as sorted (name, value) pairs, hashable and canonical."""


def make_labels(mapping: Mapping[str, str] | None = None) -> Labels:
    """Return the canonical label set for ``mapping``, dropping empty values."""
    if not mapping:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items() if v != ""))


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One KPI with one label set."""

    kpi: str
    labels: Labels = ()

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def __str__(self) -> str:
        inner = ",".join(f'{name}="{value}"' for name, value in self.labels)
        return f"{self.kpi}{{{inner}}}"


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of a series; ``timestamp`` is seconds since the epoch, UTC."""

    key: SeriesKey
    timestamp: float
    value: float
