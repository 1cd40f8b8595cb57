"""Static checks of parsed expressions: the KPIs and key results they use."""

from __future__ import annotations

import difflib
from collections.abc import Collection

from rules.expr._signatures import KEY_RESULT_FUNCTIONS
from rules.expr._tree import Call, Expr, Selector, StringLiteral, walk
from rules.expr.errors import ExpressionError


def referenced_kpis(expr: Expr) -> frozenset[str]:
    """Return the names of the KPIs that ``expr`` selects with ``kpi(...)``."""
    return frozenset(node.kpi for node in walk(expr) if isinstance(node, Selector))


ABSENCE_FUNCTIONS = frozenset({"absent", "stale"})
"""Functions whose result is about missing or old data."""


def referenced_selectors(expr: Expr) -> tuple[Selector, ...]:
    """Return every ``kpi(...)`` selector of ``expr``, parents first."""
    return tuple(node for node in walk(expr) if isinstance(node, Selector))


def reads_absence(expr: Expr) -> bool:
    """Return whether ``expr`` calls ``absent`` or ``stale``."""
    return any(
        isinstance(node, Call) and node.function in ABSENCE_FUNCTIONS
        for node in walk(expr)
    )


def referenced_key_results(expr: Expr) -> frozenset[str]:
    """Return the names of the key results that ``expr`` reads."""
    return frozenset(name for name, _ in _key_result_references(expr))


def _key_result_references(expr: Expr) -> list[tuple[str, int]]:
    references = []
    for node in walk(expr):
        if isinstance(node, Call) and node.function in KEY_RESULT_FUNCTIONS:
            argument = node.arguments[0]
            if isinstance(argument, StringLiteral):
                references.append((argument.value, argument.offset))
    return references


def reference_errors(
    expr: Expr,
    known_kpis: Collection[str] | None = None,
    known_key_results: Collection[str] | None = None,
) -> list[ExpressionError]:
    """Return one error per reference to an unknown KPI or key result.

    Parameters
    ----------
    expr : Expr
        A tree returned by ``parse``.
    known_kpis, known_key_results : collection of str, optional
        The defined names. None skips the check of that kind of name.

    Returns
    -------
    list of ExpressionError
        Sorted by offset; each message suggests the closest known name.
    """
    errors = []
    if known_kpis is not None:
        for node in walk(expr):
            if isinstance(node, Selector) and node.kpi not in known_kpis:
                message = _unknown_name_message("KPI", node.kpi, known_kpis, "kpis")
                errors.append(ExpressionError(message, node.offset))
    if known_key_results is not None:
        for name, offset in _key_result_references(expr):
            if name not in known_key_results:
                message = _unknown_name_message(
                    "key result", name, known_key_results, "objectives"
                )
                errors.append(ExpressionError(message, offset))
    return sorted(errors, key=lambda error: error.offset)


def validate(
    expr: Expr,
    known_kpis: Collection[str] | None = None,
    known_key_results: Collection[str] | None = None,
) -> list[str]:
    """Return a message per reference to an unknown KPI or key result.

    The messages are those of ``reference_errors``, which also gives offsets.
    """
    return [
        error.message for error in reference_errors(expr, known_kpis, known_key_results)
    ]


def _unknown_name_message(
    kind: str, name: str, known: Collection[str], section: str
) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"Unknown {kind} {name!r}; did you mean {close[0]!r}?"
    return (
        f"Unknown {kind} {name!r}; define it under {section}: in the main "
        "configuration or fix the name."
    )
