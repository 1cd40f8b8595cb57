"""Nodes of a parsed expression, as frozen dataclasses.

Every node has ``offset``, the 0-based index in the expression text of the
token the node is named after: the operator of a binary or unary operation,
the function name of a call, the first character of a literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from monitor.series import Labels

MatchOperator = Literal["=", "!=", "=~", "!~"]
ArithmeticOperator = Literal["+", "-", "*", "/", "%", "^"]
ComparisonOperator = Literal["==", "!=", "<", "<=", ">", ">="]
SetOperator = Literal["and", "or", "unless"]
BinaryOperator = ArithmeticOperator | ComparisonOperator | SetOperator
UnaryOperator = Literal["-", "+", "not"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Matcher:
    """A label matcher of a KPI selector, such as ``region=~"eu|us"``.

    A series without the label matches as if the label had the empty value,
    as in PromQL. Regular expressions must match the whole value.
    """

    name: str
    operator: MatchOperator
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    """Compiled ``value`` for ``=~`` and ``!~``, set by the parser."""

    def matches(self, labels: Labels) -> bool:
        """Return whether a series with ``labels`` satisfies this matcher."""
        actual = ""
        for name, value in labels:
            if name == self.name:
                actual = value
                break
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        pattern = self.pattern if self.pattern is not None else re.compile(self.value)
        found = pattern.fullmatch(actual) is not None
        return found if self.operator == "=~" else not found


def matches_all(matchers: tuple[Matcher, ...], labels: Labels) -> bool:
    """Return whether ``labels`` satisfy every matcher."""
    return all(matcher.matches(labels) for matcher in matchers)


@dataclass(frozen=True, kw_only=True, slots=True)
class VectorMatching:
    """An ``on(...)`` or ``ignoring(...)`` modifier of a binary operation."""

    kind: Literal["on", "ignoring"]
    labels: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class NumberLiteral:
    """A number such as ``42``, ``1.5``, ``1_000`` or ``1e3``."""

    value: float
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DurationLiteral:
    """A duration such as ``1h30m``; used in arithmetic, it is its seconds."""

    seconds: float
    text: str
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StringLiteral:
    """A quoted string, after escapes are decoded."""

    value: str
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Selector:
    """``kpi("name", label=value, ...)``: the series of one KPI."""

    kpi: str
    matchers: tuple[Matcher, ...]
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """A call of a function other than ``kpi``.

    ``arguments`` contains one expression per parameter in signature order, with
    keyword arguments and defaults already resolved.
    """

    function: str
    arguments: tuple[Expr, ...]
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class UnaryOperation:
    """``-x``, ``+x`` or ``not x``."""

    operator: UnaryOperator
    operand: Expr
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class BinaryOperation:
    """An arithmetic, comparison or set operation, with optional matching."""

    operator: BinaryOperator
    left: Expr
    right: Expr
    matching: VectorMatching | None
    offset: int


Expr = (
    NumberLiteral
    | DurationLiteral
    | StringLiteral
    | Selector
    | Call
    | UnaryOperation
    | BinaryOperation
)
"""Any node of a parsed expression."""

ValueType = Literal["scalar", "vector", "string", "duration"]
"""Static type of an expression: what evaluating it produces."""


def children(node: Expr) -> tuple[Expr, ...]:
    """Return the direct sub-expressions of ``node``."""
    if isinstance(node, Call):
        return node.arguments
    if isinstance(node, UnaryOperation):
        return (node.operand,)
    if isinstance(node, BinaryOperation):
        return (node.left, node.right)
    return ()


def walk(node: Expr) -> list[Expr]:
    """Return ``node`` and all its sub-expressions, parents first."""
    nodes = [node]
    index = 0
    while index < len(nodes):
        nodes.extend(children(nodes[index]))
        index += 1
    return nodes
