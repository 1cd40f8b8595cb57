"""Annotation templates: Jinja2 in a sandbox, with formatting filters.

Annotations are rendered when an alert changes state, with these variables:

- ``alert``: the alert name.
- ``value``: the value that made the condition true; for a forecast rule,
  the attainment probability.
- ``labels``: the alert labels, including ``alertname``.
- ``kpi``: for threshold, dependency and anomaly rules, the KPI the alert is about and
  its blast radius (``name``, ``help``, ``unit``, ``labels``,
  ``downstream``, ``key_results_at_risk``).
- ``key_result``: for forecast rules, the key result figures (see
  ``KEY_RESULT_FIELDS``).

``check_annotations`` finds syntax errors, unknown filters and names that
the rule's kind does not provide, so ``krwatch check`` reports them before
an alert fires.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

logger = logging.getLogger(__name__)

KPI_FIELDS = frozenset(
    {"name", "help", "unit", "labels", "downstream", "key_results_at_risk"}
)
"""Keys of the ``kpi`` variable; ``rules.graph.KPIGraph.kpi_context`` fills it."""

KEY_RESULT_FIELDS = frozenset(
    {
        "name",
        "objective",
        "owner",
        "kpi",
        "measure",
        "direction",
        "baseline",
        "target",
        "start",
        "due",
        "status",
        "current",
        "progress",
        "expected_progress",
        "forecast",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
        "attainment_probability",
        "shortfall",
        "required_run_rate",
        "decide_by",
        "reason",
    }
)
"""Keys of the ``key_result`` variable, as ``KeyResultStatus.context`` returns."""

VARIABLES: dict[str, frozenset[str]] = {
    "threshold": frozenset({"alert", "value", "labels", "kpi"}),
    "dependency": frozenset({"alert", "value", "labels", "kpi"}),
    "anomaly": frozenset({"alert", "value", "labels", "kpi"}),
    "forecast": frozenset({"alert", "value", "labels", "key_result"}),
}
"""Template variables that each rule kind provides."""

_MAPPING_FIELDS = {"kpi": KPI_FIELDS, "key_result": KEY_RESULT_FIELDS}
_DURATION_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
_SIZE_SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _percent(value: Any, digits: int = 1) -> str:
    number = _finite(value)
    if number is None:
        return str(value)
    return f"{number * 100:.{digits}f}%"


def _signed_percent(value: Any, digits: int = 1) -> str:
    number = _finite(value)
    if number is None:
        return str(value)
    return f"{number * 100:+.{digits}f}%"


def _humanize(value: Any) -> str:
    number = _finite(value)
    if number is None:
        return str(value)
    for size, suffix in _SIZE_SUFFIXES:
        if abs(number) >= size:
            return f"{number / size:.3g}{suffix}"
    return f"{number:.4g}"


def _number(value: Any, digits: int = 0) -> str:
    number = _finite(value)
    if number is None:
        return str(value)
    return f"{number:,.{digits}f}"


def _duration(value: Any) -> str:
    seconds = _finite(value)
    if seconds is None:
        return str(value)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for size, unit in _DURATION_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    return sign + ("".join(parts) or "0s")


def _date(value: Any, format: str = "%Y-%m-%d %H:%M UTC") -> str:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        number = _finite(value)
        if number is None:
            return str(value)
        moment = datetime.fromtimestamp(number, UTC)
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(format)


FILTERS = {
    "percent": _percent,
    "signed_percent": _signed_percent,
    "humanize": _humanize,
    "number": _number,
    "duration": _duration,
    "date": _date,
}
"""Filters added to Jinja2's built-in ones, by name."""


def make_environment() -> jinja2.Environment:
    """Return the sandboxed environment used for every annotation.

    Undefined names raise instead of rendering as empty text, and the sandbox
    blocks attribute access to Python internals and any mutation.
    """
    environment = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False
    )
    environment.filters.update(FILTERS)
    return environment


_ENVIRONMENT = make_environment()


def check_template(text: str) -> str | None:
    """Return the syntax or unknown-filter error of ``text`` as a sentence."""
    try:
        _ENVIRONMENT.compile(text)
    except jinja2.TemplateSyntaxError as error:
        message = (error.message or "invalid syntax").rstrip(".")
        return f"Invalid template at line {error.lineno}: {message}."
    return None


def rule_kind(rule: object) -> str:
    """Return the kind of a rule: its ``kind`` property, or one inferred."""
    kind = getattr(rule, "kind", None)
    if isinstance(kind, str) and kind in VARIABLES:
        return kind
    if hasattr(rule, "key_results") and hasattr(rule, "attainment_below"):
        return "forecast"
    if isinstance(getattr(rule, "kpi", None), str):
        return "anomaly"
    return "threshold"


def check_annotations(annotations: Mapping[str, str], kind: str) -> dict[str, str]:
    """Check every annotation template of a rule of ``kind``.

    Parameters
    ----------
    annotations : mapping of str to str
        Annotation name to template text.
    kind : str
        ``threshold``, ``dependency``, ``anomaly`` or ``forecast``; selects
        the variables.

    Returns
    -------
    dict of str to str
        Annotation name to one message per problem, joined by spaces; empty
        when every template is valid.
    """
    allowed = VARIABLES.get(kind, VARIABLES["threshold"])
    problems: dict[str, str] = {}
    for name, text in annotations.items():
        syntax = check_template(text)
        if syntax is not None:
            problems[name] = syntax
            continue

        messages = _name_problems(_ENVIRONMENT.parse(text), allowed, kind)
        if messages:
            problems[name] = " ".join(messages)
    return problems


def _name_problems(
    tree: nodes.Template, allowed: frozenset[str], kind: str
) -> list[str]:
    assigned = {node.name for node in tree.find_all(nodes.Name) if node.ctx != "load"}
    messages = []
    used = sorted(
        {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
        - assigned
    )
    for variable in used:
        if variable in allowed:
            continue
        suggestion = _close(variable, allowed)
        messages.append(
            f"Unknown template variable {variable!r}.{suggestion} Rules of kind "
            f"{kind} provide {', '.join(sorted(allowed))}."
        )

    for variable, fields in _MAPPING_FIELDS.items():
        if variable not in allowed:
            continue
        for attribute in sorted(_attributes_of(tree, variable) - fields):
            suggestion = _close(attribute, fields)
            messages.append(
                f"Unknown field {attribute!r} of {variable!r}.{suggestion} Its "
                f"fields are {', '.join(sorted(fields))}."
            )
    return messages


def _attributes_of(tree: nodes.Template, variable: str) -> set[str]:
    found = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == variable:
            found.add(node.attr)
    for item in tree.find_all(nodes.Getitem):
        if not (isinstance(item.node, nodes.Name) and item.node.name == variable):
            continue
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            found.add(item.arg.value)
    return found


def _close(word: str, choices: frozenset[str]) -> str:
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def render_annotations(annotations: Mapping[str, str], **values: Any) -> dict[str, str]:
    """Render each annotation; a failing one keeps its text and says why.

    Parameters
    ----------
    annotations : mapping of str to str
        Annotation name to template text.
    **values
        Template variables, such as ``value``, ``labels``, ``kpi`` and
        ``key_result``.
    """
    rendered = {}
    for name, text in annotations.items():
        try:
            rendered[name] = _ENVIRONMENT.from_string(text).render(**values)
        except jinja2.TemplateError as error:
            logger.warning("Annotation %s failed to render: %s", name, error)
            rendered[name] = f"{text} (template error: {error})"
    return rendered
