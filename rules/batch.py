"""Vectorised evaluation of common threshold rule shapes over a dense block.

Most threshold rules compare one KPI measure with a number:

- ``kpi("x") > 5`` or ``last(kpi("x")) > 5``;
- ``slope(kpi("x"), 1d) < 0``;
- ``predict_linear(kpi("x"), 1d, 1d) < 100``;
- ``kpi("a") / kpi("b") > 0.5``, matching series with equal label sets, or
  ``kpi("a") / on() kpi("b") > 0.5`` where each side selects one series.

``BatchPlan`` compiles such rules into index arrays over a ``DenseBlock`` so
that one cycle evaluates all of them with a few numpy operations: one
matrix-vector product per distinct fit window instead of one Python call per
rule and series. Rules of any other shape are reported as not compiled, and
the caller evaluates them with the tree evaluator in ``rules.expr``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from monitor.dense import DenseBlock, LinearFit
from monitor.series import Labels
from rules.expr import (
    BinaryOperation,
    Call,
    DurationLiteral,
    Expr,
    NumberLiteral,
    Selector,
    UnaryOperation,
)

Comparison = Callable[[np.ndarray, np.ndarray], np.ndarray]

COMPARISONS: dict[str, Comparison] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATOR_CODES = {name: code for code, name in enumerate(COMPARISONS)}
FULL_FIT_FRACTION = 4
"""Fit every row of the block once rules read more than 1/4 of its rows."""


@dataclass(frozen=True, slots=True)
class _Shape:
    """The computation of one compiled rule before its comparison."""

    kind: str
    """``last``, ``fit`` or ``ratio``."""
    selectors: tuple[Selector, ...]
    window_seconds: float = 0.0
    horizon_seconds: float | None = None
    """For ``fit``: ``None`` gives the slope, a number the predicted value."""
    ignore_labels: bool = False
    """For ``ratio``: written with ``on()``, so each side must be one series."""


@dataclass(slots=True)
class _Pairs:
    """Flat arrays of (rule, series) pairs of one shape group."""

    rules: list[Hashable] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    other_rows: list[int] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    operators: list[int] = field(default_factory=list)
    labels: list[Labels] = field(default_factory=list)
    """Labels of each pair's result; ``on()`` keeps none, as in PromQL."""
    max_ages: list[float] = field(default_factory=list)
    """Seconds after which each pair's series counts as stale."""

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (
            np.asarray(self.rows, dtype=np.intp),
            np.asarray(self.other_rows, dtype=np.intp),
            np.asarray(self.thresholds, dtype=np.float64),
            np.asarray(self.operators, dtype=np.int8),
            np.asarray(self.max_ages, dtype=np.float64),
        )


def compile_shape(expression: Expr) -> tuple[_Shape, str, float] | None:
    """Return the shape, comparison and threshold of a compilable rule."""
    if not isinstance(expression, BinaryOperation):
        return None
    if expression.operator not in COMPARISONS:
        return None
    threshold = _number(expression.right)
    if threshold is None:
        return None

    shape = _value_shape(expression.left)
    if shape is None:
        return None
    return shape, expression.operator, threshold


def _number(node: Expr) -> float | None:
    """Return the value of a number literal, with an optional sign."""
    if isinstance(node, NumberLiteral):
        return node.value
    if (
        isinstance(node, UnaryOperation)
        and node.operator in ("-", "+")
        and isinstance(node.operand, NumberLiteral)
    ):
        sign = -1.0 if node.operator == "-" else 1.0
        return sign * node.operand.value
    return None


def _value_shape(node: Expr) -> _Shape | None:
    if isinstance(node, Selector):
        return _Shape(kind="last", selectors=(node,))
    if isinstance(node, Call):
        return _call_shape(node)
    if (
        isinstance(node, BinaryOperation)
        and node.operator == "/"
        and isinstance(node.left, Selector)
        and isinstance(node.right, Selector)
        and (node.matching is None or node.matching.labels == ())
    ):
        return _Shape(
            kind="ratio",
            selectors=(node.left, node.right),
            ignore_labels=node.matching is not None,
        )
    return None


def _call_shape(node: Call) -> _Shape | None:
    arguments = node.arguments
    if not arguments or not isinstance(arguments[0], Selector):
        return None
    selector = arguments[0]
    if node.function == "last":
        return _Shape(kind="last", selectors=(selector,))
    if node.function == "slope" and isinstance(arguments[1], DurationLiteral):
        return _Shape(
            kind="fit", selectors=(selector,), window_seconds=arguments[1].seconds
        )
    if (
        node.function == "predict_linear"
        and isinstance(arguments[1], DurationLiteral)
        and isinstance(arguments[2], DurationLiteral)
    ):
        return _Shape(
            kind="fit",
            selectors=(selector,),
            window_seconds=arguments[1].seconds,
            horizon_seconds=arguments[2].seconds,
        )
    return None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of one batch cycle."""

    compiled: frozenset[Hashable]
    """Rules this plan evaluated; their alerts hold only where listed below."""
    holding: Mapping[Hashable, list[tuple[Labels, float]]]
    """For each compiled rule, the fresh series for which the comparison holds."""
    stale: Mapping[Hashable, set[Labels]]
    """For each compiled rule, result labels whose series is stale or absent:
    their alerts have no data rather than a false condition."""


class BatchPlan:
    """Compiled threshold rules over one dense block.

    Parameters
    ----------
    rules : mapping of hashable to Expr
        Parsed expressions by rule identity.
    block : DenseBlock
        The series the rules read. Selectors are resolved against its rows
        and resolved again when rows are added.
    """

    def __init__(
        self,
        rules: Mapping[Hashable, Expr],
        block: DenseBlock,
        stale_after: Mapping[str, float] | None = None,
    ) -> None:
        self.block = block
        self.stale_after = dict(stale_after or {})
        self._shapes: dict[Hashable, tuple[_Shape, str, float]] = {}
        self.not_compiled: list[Hashable] = []
        for key, expression in rules.items():
            compiled = compile_shape(expression)
            if compiled is None:
                self.not_compiled.append(key)
            else:
                self._shapes[key] = compiled
        self._resolved_rows = -1
        self._groups: dict[tuple[str, float, float | None], _Pairs] = {}
        self._arrays: dict[tuple[str, float, float | None], tuple[np.ndarray, ...]] = {}
        self._rule_of_pair: dict[tuple[str, float, float | None], np.ndarray] = {}
        self._labels_of_pair: dict[tuple[str, float, float | None], list[Labels]] = {}
        self._fit_rows: dict[float, np.ndarray] = {}
        self._fit_positions: dict[tuple[str, float, float | None], np.ndarray] = {}
        self._fits: dict[float, LinearFit] = {}
        self._resolved_rules: set[Hashable] = set()

    @property
    def compiled(self) -> frozenset[Hashable]:
        return frozenset(self._shapes)

    def resolved(self, rule: Hashable) -> bool:
        """Return whether ``rule`` matched at least one series at the last cycle."""
        return rule in self._resolved_rules

    def _resolve(self) -> None:
        """Map every compiled rule's selectors to block rows."""
        groups = self._collect_pairs()
        self._groups = groups
        self._arrays = {key: pairs.arrays() for key, pairs in groups.items()}
        self._rule_of_pair = {
            key: np.asarray(pairs.rules, dtype=object) for key, pairs in groups.items()
        }
        self._labels_of_pair = {key: pairs.labels for key, pairs in groups.items()}
        self._resolved_rules = {
            rule for pairs in groups.values() for rule in pairs.rules
        }

        self._plan_fits()
        self._resolved_rows = len(self.block.keys)

    def _collect_pairs(self) -> dict[tuple[str, float, float | None], _Pairs]:
        """Return the (rule, series) pairs of every shape group."""
        by_kpi: dict[str, list[int]] = {}
        for row, key in enumerate(self.block.keys):
            by_kpi.setdefault(key.kpi, []).append(row)

        groups: dict[tuple[str, float, float | None], _Pairs] = {}
        for rule, (shape, comparison, threshold) in self._shapes.items():
            group_key = (shape.kind, shape.window_seconds, shape.horizon_seconds)
            pairs = groups.setdefault(group_key, _Pairs())
            rows = [self._matching(by_kpi, s) for s in shape.selectors]
            if shape.kind == "ratio":
                matched = self._match_ratio(shape, rows[0], rows[1])
            else:
                matched = [(row, row) for row in rows[0]]
            max_age = min(
                self.stale_after.get(selector.kpi, np.inf)
                for selector in shape.selectors
            )
            keep_labels = not (shape.kind == "ratio" and shape.ignore_labels)
            for row, other in matched:
                pairs.max_ages.append(max_age)
                pairs.labels.append(self.block.keys[row].labels if keep_labels else ())
                pairs.rules.append(rule)
                pairs.rows.append(row)
                pairs.other_rows.append(other)
                pairs.thresholds.append(threshold)
                pairs.operators.append(OPERATOR_CODES[comparison])
        return groups

    def _plan_fits(self) -> None:
        """Fit each window once for all groups that use it.

        When a window's rules read more than a quarter of the block, every row
        is fitted: a contiguous slice costs less than gathering the rows.
        """
        rows_by_window: dict[float, list[np.ndarray]] = {}
        for (kind, window, _), arrays in self._arrays.items():
            if kind == "fit":
                rows_by_window.setdefault(window, []).append(arrays[0])
        self._fit_rows = {}
        self._fit_positions = {}
        total = len(self.block.keys)
        for window, parts in rows_by_window.items():
            unique = np.unique(np.concatenate(parts))
            if unique.size * FULL_FIT_FRACTION > total:
                unique = np.arange(total)
            self._fit_rows[window] = unique
        for group_key, arrays in self._arrays.items():
            if group_key[0] == "fit":
                rows = self._fit_rows[group_key[1]]
                self._fit_positions[group_key] = np.searchsorted(rows, arrays[0])

    def _match_ratio(
        self, shape: _Shape, left: list[int], right: list[int]
    ) -> list[tuple[int, int]]:
        """Pair the rows of both sides as one-to-one vector matching does."""
        if shape.ignore_labels:
            if len(left) == 1 and len(right) == 1:
                return [(left[0], right[0])]
            return []

        keys = self.block.keys
        by_labels = {keys[row].labels: row for row in right}
        return [
            (row, by_labels[keys[row].labels])
            for row in left
            if keys[row].labels in by_labels
        ]

    def _matching(
        self, by_kpi: Mapping[str, list[int]], selector: Selector
    ) -> list[int]:
        keys = self.block.keys
        return [
            row
            for row in by_kpi.get(selector.kpi, ())
            if all(m.matches(keys[row].labels) for m in selector.matchers)
        ]

    def evaluate(self, now: float) -> BatchResult:
        """Evaluate every compiled rule at ``now``."""
        with self.block.lock:
            if self._resolved_rows != len(self.block.keys):
                self._resolve()
            self._fits = {}
            holding: dict[Hashable, list[tuple[Labels, float]]] = {}
            stale: dict[Hashable, set[Labels]] = {}
            for group_key, arrays in self._arrays.items():
                values = self._values(group_key, arrays, now)
                ages = now - self._newest_times(group_key, arrays, now)
                fresh = ages <= arrays[4]
                hits = _compare(values, arrays[2], arrays[3]) & fresh
                rules = self._rule_of_pair[group_key]
                labels = self._labels_of_pair[group_key]
                for index in np.flatnonzero(hits):
                    holding.setdefault(rules[index], []).append(
                        (labels[index], float(values[index]))
                    )
                for index in np.flatnonzero(~fresh):
                    stale.setdefault(rules[index], set()).add(labels[index])
        return BatchResult(compiled=self.compiled, holding=holding, stale=stale)

    def _newest_times(
        self,
        group_key: tuple[str, float, float | None],
        arrays: tuple[np.ndarray, ...],
        now: float,
    ) -> np.ndarray:
        """Return the time of each pair's newest finite sample (NaN if none)."""
        _, times = self.block.last_finite(arrays[0], now)
        if group_key[0] == "ratio":
            _, other = self.block.last_finite(arrays[1], now)
            times = np.minimum(times, other)
        return np.where(np.isnan(times), -np.inf, times)

    def _values(
        self,
        group_key: tuple[str, float, float | None],
        arrays: tuple[np.ndarray, ...],
        now: float,
    ) -> np.ndarray:
        kind, window, horizon = group_key
        rows, other_rows = arrays[0], arrays[1]
        if kind == "last":
            return self.block.last_finite(rows, now)[0]
        if kind == "ratio":
            with np.errstate(divide="ignore", invalid="ignore"):
                numerator = self.block.last_finite(rows, now)[0]
                denominator = self.block.last_finite(other_rows, now)[0]
                ratio = numerator / denominator
            ratio[denominator == 0] = np.nan
            return ratio

        fit = self._fits.get(window)
        if fit is None:
            fit = self.block.linear_fit(self._fit_rows[window], now, window)
            self._fits[window] = fit
        positions = self._fit_positions[group_key]
        if horizon is None:
            return np.asarray(fit.slope[positions])
        return np.asarray(fit.value_at_now[positions] + fit.slope[positions] * horizon)


def _compare(
    values: np.ndarray, thresholds: np.ndarray, operators: np.ndarray
) -> np.ndarray:
    """Apply each pair's comparison; NaN never satisfies one."""
    hits = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for name, code in OPERATOR_CODES.items():
            mask = operators == code
            if mask.any():
                hits[mask] = COMPARISONS[name](values[mask], thresholds[mask])
    hits &= ~np.isnan(values)
    return hits


__all__ = ["BatchPlan", "BatchResult", "compile_shape"]
