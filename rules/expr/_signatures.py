"""Signatures of the built-in functions, used by the parser to check calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ParameterKind = Literal["selector", "vector", "number", "scalar", "duration", "string"]
"""Kind of argument that a parameter accepts.

``selector`` is a ``kpi(...)`` call, ``vector`` any expression that yields a
vector, ``number`` a scalar or a vector, ``scalar`` an expression without
series, ``duration`` a duration literal and ``string`` a string literal.
"""

_KIND_DESCRIPTIONS = {
    "selector": 'a KPI selector such as kpi("orders")',
    "vector": 'a vector expression such as kpi("orders")',
    "number": "a number or a vector expression",
    "scalar": "a number that does not depend on series, such as 0.9",
    "duration": "a duration literal such as 1h or 7d",
    "string": 'a quoted string such as "churn_q1"',
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Parameter:
    """One parameter of a built-in function."""

    name: str
    kind: ParameterKind
    default: float | None = None

    def describe_kind(self) -> str:
        """Return what an argument for this parameter must be, in words."""
        return _KIND_DESCRIPTIONS[self.kind]


@dataclass(frozen=True, kw_only=True, slots=True)
class Signature:
    """Name, parameters and result of a built-in function.

    ``returns`` is ``"same"`` when the result has the type of the first
    argument (a scalar for a scalar, a vector for a vector).
    """

    name: str
    parameters: tuple[Parameter, ...]
    returns: Literal["vector", "same"]

    def __str__(self) -> str:
        parts = []
        for parameter in self.parameters:
            if parameter.default is None:
                parts.append(parameter.name)
            else:
                parts.append(f"{parameter.name}={parameter.default:g}")
        return f"{self.name}({', '.join(parts)})"


def _window_function(name: str) -> Signature:
    return Signature(
        name=name,
        parameters=(
            Parameter(name="selector", kind="selector"),
            Parameter(name="window", kind="duration"),
        ),
        returns="vector",
    )


def _key_result_function(name: str) -> Signature:
    return Signature(
        name=name,
        parameters=(Parameter(name="key_result", kind="string"),),
        returns="vector",
    )


WINDOW_FUNCTIONS = (
    "avg_over",
    "min_over",
    "max_over",
    "sum_over",
    "count_over",
    "delta",
    "pct_change",
    "rate",
    "slope",
    "stale",
)
KEY_RESULT_FUNCTIONS = ("progress", "expected_progress", "forecast", "attainment")

SIGNATURES: dict[str, Signature] = {
    name: _window_function(name) for name in WINDOW_FUNCTIONS
}
SIGNATURES.update({name: _key_result_function(name) for name in KEY_RESULT_FUNCTIONS})
SIGNATURES["quantile_over"] = Signature(
    name="quantile_over",
    parameters=(
        Parameter(name="selector", kind="selector"),
        Parameter(name="q", kind="scalar"),
        Parameter(name="window", kind="duration"),
    ),
    returns="vector",
)
SIGNATURES["predict_linear"] = Signature(
    name="predict_linear",
    parameters=(
        Parameter(name="selector", kind="selector"),
        Parameter(name="window", kind="duration"),
        Parameter(name="horizon", kind="duration"),
    ),
    returns="vector",
)
SIGNATURES["last"] = Signature(
    name="last",
    parameters=(Parameter(name="selector", kind="selector"),),
    returns="vector",
)
SIGNATURES["absent"] = Signature(
    name="absent",
    parameters=(Parameter(name="vector", kind="vector"),),
    returns="vector",
)
SIGNATURES["anomaly_score"] = Signature(
    name="anomaly_score",
    parameters=(Parameter(name="selector", kind="selector"),),
    returns="vector",
)
SIGNATURES["abs"] = Signature(
    name="abs",
    parameters=(Parameter(name="value", kind="number"),),
    returns="same",
)
SIGNATURES["clamp"] = Signature(
    name="clamp",
    parameters=(
        Parameter(name="value", kind="number"),
        Parameter(name="lo", kind="scalar"),
        Parameter(name="hi", kind="scalar"),
    ),
    returns="same",
)
SIGNATURES["round"] = Signature(
    name="round",
    parameters=(
        Parameter(name="value", kind="number"),
        Parameter(name="ndigits", kind="scalar", default=0.0),
    ),
    returns="same",
)

KPI_SIGNATURE_TEXT = 'kpi(name, label="value", label!="value", label=~"regex", ...)'
"""Call form of ``kpi`` shown in error messages."""

FUNCTION_NAMES = ("kpi", *sorted(SIGNATURES))
