"""The rule expression language: parser, typed tree and evaluator.

``parse`` turns an expression such as ``kpi("orders", region="eu") > 100``
into a tree of frozen dataclasses. It uses its own tokenizer and Pratt parser,
so nothing is passed to ``eval``, ``exec`` or ``compile``. ``evaluate`` runs a
tree over an ``EvaluationContext`` and returns a float or a ``Vector``.
``validate`` checks the KPI and key result names a tree refers to.
``ExpressionError`` carries the message and the offset of every error.
"""

from __future__ import annotations

from rules.expr._analysis import (
    reads_absence,
    reference_errors,
    referenced_key_results,
    referenced_kpis,
    referenced_selectors,
    validate,
)
from rules.expr._evaluate import evaluate
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
from rules.expr._values import (
    Element,
    EvaluationContext,
    KeyResultValues,
    SeriesWindow,
    Vector,
)
from rules.expr.errors import EvaluationError, ExpressionError

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "BinaryOperation",
    "Call",
    "DurationLiteral",
    "Element",
    "EvaluationContext",
    "EvaluationError",
    "Expr",
    "ExpressionError",
    "KeyResultValues",
    "Matcher",
    "NumberLiteral",
    "Selector",
    "SeriesWindow",
    "StringLiteral",
    "UnaryOperation",
    "ValueType",
    "Vector",
    "VectorMatching",
    "evaluate",
    "matches_all",
    "parse",
    "reads_absence",
    "reference_errors",
    "referenced_key_results",
    "referenced_kpis",
    "referenced_selectors",
    "result_type",
    "validate",
]
