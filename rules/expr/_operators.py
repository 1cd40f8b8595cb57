"""Arithmetic, comparison and set operations on scalars and vectors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.series import Labels
from rules.expr._tree import BinaryOperation, VectorMatching
from rules.expr._values import Element, FloatArray, Vector
from rules.expr.errors import EvaluationError

COMPARISON_OPERATORS = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPERATORS = frozenset({"and", "or", "unless"})


def apply_arithmetic(operator: str, left: FloatArray, right: FloatArray) -> FloatArray:
    """Apply an arithmetic operator elementwise; division by zero gives NaN.

    Overflow gives an infinity, as in IEEE 754, so ``2 ^ 10000`` is +inf.
    ``%`` keeps the sign of the dividend, as in PromQL and C's ``fmod``.
    """
    with np.errstate(all="ignore"):
        if operator == "+":
            result = left + right
        elif operator == "-":
            result = left - right
        elif operator == "*":
            result = left * right
        elif operator == "/":
            result = np.where(right == 0, np.nan, left / right)
        elif operator == "%":
            result = np.fmod(left, right)
        else:
            result = np.power(left, right)
    return np.asarray(result, dtype=np.float64)


def apply_comparison(
    operator: str, left: FloatArray, right: FloatArray
) -> npt.NDArray[np.bool_]:
    """Compare elementwise; a NaN on either side never satisfies the comparison."""
    with np.errstate(all="ignore"):
        if operator == "==":
            result = left == right
        elif operator == "!=":
            result = left != right
        elif operator == "<":
            result = left < right
        elif operator == "<=":
            result = left <= right
        elif operator == ">":
            result = left > right
        else:
            result = left >= right
    return np.asarray(result & ~np.isnan(left) & ~np.isnan(right), dtype=np.bool_)


def is_true(value: float) -> bool:
    """Return whether a scalar counts as true: not zero and not NaN."""
    return value != 0 and not np.isnan(value)


def scalar_operation(node: BinaryOperation, left: float, right: float) -> float:
    """Evaluate an operation between two scalars; comparisons give 1 or 0."""
    if node.operator in SET_OPERATORS:
        if node.operator == "and":
            satisfied = is_true(left) and is_true(right)
        elif node.operator == "or":
            satisfied = is_true(left) or is_true(right)
        else:
            satisfied = is_true(left) and not is_true(right)
        return 1.0 if satisfied else 0.0

    left_array = np.array([left])
    right_array = np.array([right])
    if node.operator in COMPARISON_OPERATORS:
        compared = apply_comparison(node.operator, left_array, right_array)
        return 1.0 if bool(compared[0]) else 0.0
    return float(apply_arithmetic(node.operator, left_array, right_array)[0])


def vector_scalar_operation(
    node: BinaryOperation, vector: Vector, scalar: float, vector_is_left: bool
) -> Vector:
    """Evaluate an arithmetic or comparison operation of a vector and a scalar.

    Arithmetic keeps the labels. A comparison keeps the elements for which it
    holds, with their values unchanged.
    """
    if not vector:
        return ()
    values = np.fromiter((element.value for element in vector), np.float64, len(vector))
    constant = np.full(len(vector), scalar)
    left, right = (values, constant) if vector_is_left else (constant, values)
    if node.operator in COMPARISON_OPERATORS:
        keep = apply_comparison(node.operator, left, right)
        return tuple(
            element for element, kept in zip(vector, keep, strict=True) if kept
        )

    results = apply_arithmetic(node.operator, left, right)
    return tuple(
        Element(element.labels, float(result))
        for element, result in zip(vector, results, strict=True)
    )


def signature(labels: Labels, matching: VectorMatching | None) -> Labels:
    """Return the labels that ``matching`` compares: all, ``on`` or not ``ignoring``."""
    if matching is None:
        return labels
    if matching.kind == "on":
        return tuple(pair for pair in labels if pair[0] in matching.labels)
    return tuple(pair for pair in labels if pair[0] not in matching.labels)


def _index_by_signature(
    node: BinaryOperation, vector: Vector, side: str
) -> dict[Labels, Element]:
    indexed: dict[Labels, Element] = {}
    for element in vector:
        key = signature(element.labels, node.matching)
        if key in indexed:
            raise EvaluationError(
                f"The {side} side of {node.operator!r} has several series with the "
                f"labels {_format_labels(key)}{_describe_matching(node)}, but "
                "one-to-one matching needs one; narrow the selection with label "
                "matchers or match on more labels with on(...).",
                node.offset,
            )
        indexed[key] = element
    return indexed


def _describe_matching(node: BinaryOperation) -> str:
    if node.matching is None:
        return ""
    return f" after {node.matching.kind}({', '.join(node.matching.labels)})"


def _format_labels(labels: Labels) -> str:
    inner = ", ".join(f'{name}="{value}"' for name, value in labels)
    return "{" + inner + "}"


def vector_vector_operation(
    node: BinaryOperation, left: Vector, right: Vector
) -> Vector:
    """Evaluate arithmetic or a comparison between two vectors, one to one.

    Elements are paired when their matched labels are equal. Arithmetic
    results carry the matched labels; comparisons keep the left element.
    """
    left_index = _index_by_signature(node, left, "left")
    right_index = _index_by_signature(node, right, "right")
    keys = [key for key in left_index if key in right_index]
    if not keys:
        return ()

    left_values = np.array([left_index[key].value for key in keys])
    right_values = np.array([right_index[key].value for key in keys])
    if node.operator in COMPARISON_OPERATORS:
        keep = apply_comparison(node.operator, left_values, right_values)
        return tuple(
            left_index[key] for key, kept in zip(keys, keep, strict=True) if kept
        )

    results = apply_arithmetic(node.operator, left_values, right_values)
    return tuple(
        Element(key, float(result)) for key, result in zip(keys, results, strict=True)
    )


def set_operation(
    node: BinaryOperation, left: Vector | float, right: Vector | float
) -> Vector:
    """Evaluate ``and``, ``or`` or ``unless`` where at least one side is a vector.

    A scalar side counts as one element without labels when it is true and as
    an empty vector otherwise, and the sides are then matched as with ``on()``.
    """
    matching = node.matching
    if isinstance(left, float) or isinstance(right, float):
        matching = VectorMatching(kind="on", labels=())
    left_vector = _as_vector(left)
    right_vector = _as_vector(right)
    right_keys = {signature(element.labels, matching) for element in right_vector}

    if node.operator == "and":
        return tuple(
            element
            for element in left_vector
            if signature(element.labels, matching) in right_keys
        )
    if node.operator == "unless":
        return tuple(
            element
            for element in left_vector
            if signature(element.labels, matching) not in right_keys
        )

    left_keys = {signature(element.labels, matching) for element in left_vector}
    added = tuple(
        element
        for element in right_vector
        if signature(element.labels, matching) not in left_keys
    )
    return left_vector + added


def _as_vector(value: Vector | float) -> Vector:
    if isinstance(value, float):
        return (Element((), value),) if is_true(value) else ()
    return value
