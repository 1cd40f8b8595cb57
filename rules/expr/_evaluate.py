"""Evaluation of a parsed expression over an evaluation context."""

from __future__ import annotations

import math

import numpy as np

from rules.expr._operators import (
    SET_OPERATORS,
    is_true,
    scalar_operation,
    set_operation,
    vector_scalar_operation,
    vector_vector_operation,
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
)
from rules.expr._values import (
    Element,
    EvaluationContext,
    FloatArray,
    SeriesWindow,
    Vector,
)
from rules.expr._windows import (
    WINDOW_FUNCTIONS,
    cut_window,
    last_index,
    predict_linear,
    quantile,
)
from rules.expr.errors import EvaluationError

_KEY_RESULT_ATTRIBUTES = {
    "progress": "progress",
    "expected_progress": "expected_progress",
    "forecast": "forecast",
    "attainment": "attainment_probability",
}


def evaluate(expr: Expr, context: EvaluationContext) -> Vector | float:
    """Evaluate a parsed expression at ``context.now``.

    Parameters
    ----------
    expr : Expr
        A tree returned by ``parse``.
    context : EvaluationContext
        The series, key results and anomaly scores to evaluate over.

    Returns
    -------
    Vector or float
        A vector (a tuple of ``Element``) when the expression involves series
        or key results, otherwise a float. A duration on its own evaluates to
        its seconds.

    Raises
    ------
    EvaluationError
        If two vectors cannot be matched one to one, or a function argument is
        out of range, such as ``clamp`` with its lower bound above its upper.
        Exceptions raised by the context's methods propagate unchanged.
    """
    return _Evaluator(context).evaluate(expr)


class _Evaluator:
    def __init__(self, context: EvaluationContext) -> None:
        self._context = context
        self._now = float(context.now)
        # A selector that appears twice in one expression is fetched once.
        self._selections: dict[tuple[str, tuple[Matcher, ...]], list[SeriesWindow]] = {}

    def evaluate(self, node: Expr) -> Vector | float:
        if isinstance(node, NumberLiteral):
            return node.value
        if isinstance(node, DurationLiteral):
            return node.seconds
        if isinstance(node, Selector):
            return self._last_values(node)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, UnaryOperation):
            return self._unary(node)
        if isinstance(node, BinaryOperation):
            return self._binary(node)
        raise EvaluationError(
            "A string is not a value; strings are only arguments of functions.",
            node.offset,
        )

    def _scalar(self, node: Expr) -> float:
        value = self.evaluate(node)
        if isinstance(value, tuple):
            raise EvaluationError(
                "Expected a number but the argument yields a vector.", node.offset
            )
        return value

    def _vector(self, node: Expr) -> Vector:
        value = self.evaluate(node)
        if not isinstance(value, tuple):
            raise EvaluationError(
                "Expected a vector but the argument yields a number.", node.offset
            )
        return value

    # Series --------------------------------------------------------------------

    def _select(self, selector: Selector) -> list[SeriesWindow]:
        key = (selector.kpi, selector.matchers)
        windows = self._selections.get(key)
        if windows is None:
            windows = list(self._context.select(selector.kpi, selector.matchers))
            self._selections[key] = windows
        return windows

    def _last_values(self, selector: Selector) -> Vector:
        elements = []
        for window in self._select(selector):
            index = last_index(window.timestamps, self._now)
            if index >= 0:
                elements.append(Element(window.labels, float(window.values[index])))
        return tuple(elements)

    def _over_window(self, node: Call) -> Vector:
        selector, duration = node.arguments[0], node.arguments[-1]
        horizon = 0.0
        if node.function == "predict_linear":
            duration, ahead = node.arguments[1], node.arguments[2]
            horizon = ahead.seconds if isinstance(ahead, DurationLiteral) else 0.0
        if not isinstance(selector, Selector) or not isinstance(
            duration, DurationLiteral
        ):
            raise EvaluationError(
                f"{node.function} needs a selector and a duration.", node.offset
            )
        q = self._scalar(node.arguments[1]) if node.function == "quantile_over" else 0.0
        function = WINDOW_FUNCTIONS.get(node.function)
        elements = []
        for window in self._select(selector):
            timestamps, values = cut_window(
                window.timestamps, window.values, self._now, duration.seconds
            )
            # Infinite samples give NaN, as IEEE 754 defines, without warnings.
            with np.errstate(all="ignore"):
                if node.function == "predict_linear":
                    value = predict_linear(timestamps, values, self._now, horizon)
                elif function is None:
                    value = quantile(values, q)
                else:
                    value = function(timestamps, values)
            if value is not None:
                elements.append(Element(window.labels, value))
        return tuple(elements)

    def _stale(self, node: Call) -> Vector:
        selector, duration = node.arguments
        if not isinstance(selector, Selector) or not isinstance(
            duration, DurationLiteral
        ):
            raise EvaluationError("stale needs a selector and a duration.", node.offset)
        elements = []
        for window in self._select(selector):
            index = last_index(window.timestamps, self._now)
            age = math.inf if index < 0 else self._now - float(window.timestamps[index])
            if age > duration.seconds:
                elements.append(Element(window.labels, age))
        return tuple(elements)

    def _anomaly_scores(self, selector: Selector) -> Vector:
        elements = []
        for window in self._select(selector):
            if last_index(window.timestamps, self._now) >= 0:
                score = self._context.anomaly_score(window.kpi, window.labels)
                elements.append(Element(window.labels, float(score)))
        return tuple(elements)

    # Calls ---------------------------------------------------------------------

    def _call(self, node: Call) -> Vector | float:
        function = node.function
        if function in WINDOW_FUNCTIONS or function in (
            "quantile_over",
            "predict_linear",
        ):
            return self._over_window(node)
        if function == "stale":
            return self._stale(node)
        if function in _KEY_RESULT_ATTRIBUTES:
            return self._key_result(node)
        first = node.arguments[0]
        if function == "last" and isinstance(first, Selector):
            return self._last_values(first)
        if function == "anomaly_score" and isinstance(first, Selector):
            return self._anomaly_scores(first)
        if function == "absent":
            return self._absent(node)
        return self._elementwise(node)

    def _key_result(self, node: Call) -> Vector:
        argument = node.arguments[0]
        name = argument.value if isinstance(argument, StringLiteral) else ""
        values = self._context.key_result(name)
        if values is None:
            return ()
        value = float(getattr(values, _KEY_RESULT_ATTRIBUTES[node.function]))
        return (Element((("key_result", name),), value),)

    def _absent(self, node: Call) -> Vector:
        argument = node.arguments[0]
        if self._vector(argument):
            return ()
        selector = argument
        if isinstance(argument, Call) and argument.arguments:
            selector = argument.arguments[0]
        if not isinstance(selector, Selector):
            return (Element((), 1.0),)

        # As in PromQL, the result carries the labels that equality matchers
        # fix, unless a label is fixed twice.
        equalities: dict[str, list[str]] = {}
        for matcher in selector.matchers:
            if matcher.operator == "=":
                equalities.setdefault(matcher.name, []).append(matcher.value)
        labels = tuple(
            sorted(
                (name, values[0])
                for name, values in equalities.items()
                if len(values) == 1
            )
        )
        return (Element(labels, 1.0),)

    def _elementwise(self, node: Call) -> Vector | float:
        value = self.evaluate(node.arguments[0])
        values = (
            np.array([value])
            if isinstance(value, float)
            else np.fromiter(
                (element.value for element in value), np.float64, len(value)
            )
        )
        if node.function == "abs":
            results = np.abs(values)
        elif node.function == "clamp":
            results = self._clamp(node, values)
        else:
            results = self._round(node, values)
        if isinstance(value, float):
            return float(results[0])
        return tuple(
            Element(element.labels, float(result))
            for element, result in zip(value, results, strict=True)
        )

    def _clamp(self, node: Call, values: FloatArray) -> FloatArray:
        lower = self._scalar(node.arguments[1])
        upper = self._scalar(node.arguments[2])
        if lower > upper:
            raise EvaluationError(
                f"The lower bound {lower:g} of clamp is above its upper bound "
                f"{upper:g}; swap them.",
                node.offset,
            )
        return np.clip(values, lower, upper)

    def _round(self, node: Call, values: FloatArray) -> FloatArray:
        digits = self._scalar(node.arguments[1])
        if not digits.is_integer():
            raise EvaluationError(
                "The ndigits argument of round must be a whole number, not "
                f"{digits:g}.",
                node.offset,
            )
        return np.array([round(float(value), int(digits)) for value in values])

    # Operators -----------------------------------------------------------------

    def _unary(self, node: UnaryOperation) -> Vector | float:
        value = self.evaluate(node.operand)
        if node.operator == "not":
            if isinstance(value, float):
                return 0.0 if is_true(value) else 1.0
            return 0.0 if value else 1.0
        if node.operator == "+":
            return value
        if isinstance(value, float):
            return -value
        return tuple(Element(element.labels, -element.value) for element in value)

    def _binary(self, node: BinaryOperation) -> Vector | float:
        left = self.evaluate(node.left)
        right = self.evaluate(node.right)
        if isinstance(left, float) and isinstance(right, float):
            return scalar_operation(node, left, right)
        if node.operator in SET_OPERATORS:
            return set_operation(node, left, right)
        if isinstance(left, tuple) and isinstance(right, tuple):
            return vector_vector_operation(node, left, right)
        if isinstance(left, tuple) and isinstance(right, float):
            return vector_scalar_operation(node, left, right, vector_is_left=True)
        if isinstance(left, float) and isinstance(right, tuple):
            return vector_scalar_operation(node, right, left, vector_is_left=False)
        raise TypeError(f"Operands {left!r} and {right!r} are not floats or vectors.")
