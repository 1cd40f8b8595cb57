"""The rule expression language: parser, typed tree and evaluator.

``parse`` turns an expression such as ``kpi("orders", region="eu") > 100``
into a tree of frozen dataclasses with our own tokenizer and Pratt parser;
nothing is passed to ``eval``, ``exec`` or ``compile``. ``ExpressionError``
carries the message and the offset of every parse error.
"""

from __future__ import annotations

from rules.expr._parser import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    parse,
    result_type,
)
from rules.expr._tree import (
    BinaryOperation,
    Call,
    DurationLiteral,
    Expr,
    Matcher,
    NumberLiteral,
    Selector,
    StringLiteral,
    UnaryOperation,
    ValueType,
    VectorMatching,
    matches_all,
)
from rules.expr.errors import EvaluationError, ExpressionError

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "BinaryOperation",
    "Call",
    "DurationLiteral",
    "EvaluationError",
    "Expr",
    "ExpressionError",
    "Matcher",
    "NumberLiteral",
    "Selector",
    "StringLiteral",
    "UnaryOperation",
    "ValueType",
    "VectorMatching",
    "matches_all",
    "parse",
    "result_type",
]
