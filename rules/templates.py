"""Annotation templates: Jinja2 in a sandbox, with formatting filters."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

logger = logging.getLogger(__name__)


def _percent(value: Any, digits: int = 1) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(number)
    return f"{number * 100:.{digits}f}%"


def _humanize(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(number)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.3g}{suffix}"
    return f"{number:.4g}"


def _duration(value: Any) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(seconds):
        return str(seconds)
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    return "".join(parts) or "0s"


def make_environment() -> jinja2.Environment:
    """Return the sandboxed environment used for every annotation."""
    environment = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False
    )
    environment.filters.update(percent=_percent, humanize=_humanize, duration=_duration)
    return environment


_ENVIRONMENT = make_environment()


def check_template(text: str) -> str | None:
    """Return the syntax error of ``text`` as a sentence, or ``None``."""
    try:
        _ENVIRONMENT.parse(text)
    except jinja2.TemplateSyntaxError as error:
        return f"Invalid template at line {error.lineno}: {error.message}."
    return None


def render_annotations(annotations: Mapping[str, str], **values: Any) -> dict[str, str]:
    """Render each annotation; a failing one keeps its text and says why."""
    rendered = {}
    for name, text in annotations.items():
        try:
            rendered[name] = _ENVIRONMENT.from_string(text).render(**values)
        except jinja2.TemplateError as error:
            logger.warning("Annotation %s failed to render: %s", name, error)
            rendered[name] = f"{text} (template error: {error})"
    return rendered
