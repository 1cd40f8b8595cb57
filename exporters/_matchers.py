"""Label matchers shared by routes and silences: ``=``, ``!=``, ``=~``, ``!~``.

A label that is absent matches as the empty string, and regular expressions
must match the whole value, as in Prometheus and Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from exporters.errors import MatcherError

Operator = Literal["=", "!=", "=~", "!~"]
OPERATORS: tuple[Operator, ...] = ("=", "!=", "=~", "!~")

_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Longest operators first, so "=~" is not read as "=" followed by "~".
_MATCHER_TEXT = re.compile(
    r"\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<operator>=~|!~|!=|=)\s*(?P<value>.*?)\s*",
    re.DOTALL,
)


@dataclass(frozen=True, kw_only=True)
class Matcher:
    """One condition on one label."""

    name: str
    operator: Operator
    value: str
    _pattern: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(
                f"Invalid label name {self.name!r} in a matcher; use letters, "
                "digits and underscores, not starting with a digit."
            )

        if self.operator not in OPERATORS:
            raise MatcherError(
                f"Invalid matcher operator {self.operator!r}; use one of "
                f"{', '.join(OPERATORS)}."
            )

        if self.operator in ("=~", "!~"):
            object.__setattr__(self, "_pattern", compile_anchored(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether ``labels`` satisfy this matcher."""
        actual = labels.get(self.name, "")
        if self.operator == "=":
            return actual == self.value

        if self.operator == "!=":
            return actual != self.value

        pattern = self._pattern or compile_anchored(self.value)
        found = pattern.fullmatch(actual) is not None
        return found if self.operator == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{json_quote(self.value)}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "operator": self.operator, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Matcher:
        return cls(
            name=str(data["name"]),
            operator=data["operator"],
            value=str(data["value"]),
        )


def compile_anchored(pattern: str) -> re.Pattern[str]:
    """Compile a label regular expression that must match the whole value.

    Raises
    ------
    MatcherError
        If the pattern is not a valid Python regular expression.
    """
    try:
        return re.compile(pattern)
    except re.error as error:
        raise MatcherError(
            f"Invalid regular expression {pattern!r}: {error}. Write a Python "
            "regular expression; it must match the whole label value."
        ) from error


def parse_matcher(text: str) -> Matcher:
    """Parse a matcher written as ``name=value``, ``name!=value``,
    ``name=~regex`` or ``name!~regex``; the value may be double-quoted.

    Raises
    ------
    MatcherError
        If the text has no label name or no operator, or the regex is invalid.
    """
    found = _MATCHER_TEXT.fullmatch(text)
    if found is None:
        raise MatcherError(
            f"Invalid matcher {text!r}; write name=value, name!=value, "
            'name=~regex or name!~regex, such as severity=~"critical|error".'
        )

    value = found["value"]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _ESCAPED.sub(r"\1", value[1:-1])
    operator = cast(Operator, found["operator"])
    return Matcher(name=found["name"], operator=operator, value=value)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Tell whether ``labels`` satisfy every matcher; an empty tuple matches."""
    return all(matcher.matches(labels) for matcher in matchers)


def json_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
