"""Map YAML nodes onto frozen dataclasses, driven by their type hints.

``Reader.read`` converts one node to one annotated type and reports every
problem it finds instead of stopping at the first. A value that could not be
read is returned as ``INVALID``, and any dataclass, tuple or mapping that
would contain it becomes ``INVALID`` too. Such a container is still built as a
partial value, with ``INVALID`` in place of each part that failed, and
``Reader.salvage`` returns it. Cross-checks run on these partial values, so
one run reports every problem of a file.

Supported hints: ``str``, ``int``, ``float``, ``bool``, ``timedelta``,
``datetime``, ``Path``, ``Secret``, ``Literal[...]``, ``Mapping[str, X]``,
``tuple[X, ...]``, ``X | None``, unions of those, dataclasses, and ``Any``
(plain data with YAML 1.2 core scalars).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence as AbcSequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from monitor.config._yaml import (
    INVALID_TAG,
    Document,
    Mapping,
    Node,
    Problem,
    Scalar,
    Sequence,
    format_field_path,
)
from monitor.durations import DurationError, parse_duration
from monitor.errors import FieldValueError
from monitor.secrets import Secret

FieldPath = tuple[str | int, ...]
CustomReader = Callable[[Node, FieldPath], object]


class _Invalid:
    """Marker for a value that could not be read; its problems are reported."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

YAML_NAMES = {"for_": "for", "continue_matching": "continue"}
"""Dataclass fields whose YAML key differs from the field name."""

_ENV_REFERENCE = re.compile(r"(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_HEX_INT = re.compile(r"[-+]?0x[0-9a-fA-F]+")
_OCTAL_INT = re.compile(r"[-+]?0o[0-7]+")
_LEADING_ZERO_INT = re.compile(r"([-+]?)0+([0-9]+)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_NON_FINITE = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_TRUE_WORDS = frozenset({"true", "True", "TRUE"})
_FALSE_WORDS = frozenset({"false", "False", "FALSE"})
_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


_TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    timedelta: "a duration such as 30s, 5m or 1h30m",
    datetime: "an ISO 8601 timestamp",
    Path: "a path",
    Secret: "a string",
    type(None): "an empty value",
}


def yaml_name(field_name: str) -> str:
    """Return the YAML key of a dataclass field, such as ``for`` for ``for_``."""
    return YAML_NAMES.get(field_name, field_name)


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not matches:
        return ""
    return f" Did you mean {matches[0]!r}?"


MAX_LISTED_NAMES = 12
"""Maximum number of defined names that an "unknown name" message lists."""


def describe_known(name: str, known: Collection[str], role: str) -> str:
    """Return the suggestion and the defined names for an unknown ``name``.

    The result starts with a space, such as ``" Did you mean 'orders'? The
    KPIs are orders, returns."``. Past ``MAX_LISTED_NAMES`` names it gives
    only the count, so a large configuration does not flood the message.
    """
    names = sorted(known)
    if not names:
        return f" No {role} is defined."
    hint = suggest(name, names)
    if len(names) > MAX_LISTED_NAMES:
        return f"{hint} {len(names)} {role}s are defined, none with this name."
    return f"{hint} The {role}s are {join_choices(names)}."


def join_choices(choices: Iterable[str]) -> str:
    return ", ".join(str(choice) for choice in choices)


def describe_node(node: Node) -> str:
    """Describe a received value for an error message."""
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    if node.null:
        return "an empty value"
    return repr(node.value)


def describe_type(hint: Any) -> str:
    """Name an expected type in an error message, such as ``an integer``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + join_choices(repr(arg) for arg in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        names = [describe_type(arg) for arg in typing.get_args(hint)]
        return " or ".join(name for name in names if name != "an empty value")
    if origin is not None and _is_mapping_origin(origin):
        return "a mapping"
    if origin in (tuple, AbcSequence, list):
        return "a list"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return _TYPE_NAMES.get(hint, "a value")


def _is_mapping_origin(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, AbcMapping)


class Reader:
    """Read the nodes of one document into typed values, collecting problems.

    Parameters
    ----------
    document : Document
        The composed file; new problems are appended to ``document.problems``.
    environ : Mapping of str to str
        Environment that ``${NAME}`` references in ``Secret`` fields read.
    """

    def __init__(self, document: Document, environ: AbcMapping[str, str]) -> None:
        self.document = document
        self.environ = environ
        self.positions: dict[FieldPath, int] = {}
        self.partials: dict[FieldPath, Any] = {}
        """Partial value of each path that was read as ``INVALID``."""

    @property
    def problems(self) -> list[Problem]:
        return self.document.problems

    def report(self, line: int, path: FieldPath, message: str) -> None:
        problem = Problem(
            file=self.document.file,
            line=line,
            field_path=format_field_path(path),
            message=message,
        )
        self.document.problems.append(problem)

    def reject(self, path: FieldPath, partial: Any) -> Any:
        """Keep ``partial`` as the value read at ``path`` and return ``INVALID``.

        Call it after reporting the problems that make the value invalid.
        """
        self.partials[path] = partial
        return INVALID

    def salvage(self, value: Any, path: FieldPath) -> Any:
        """Return ``value``, or the partial value read at ``path`` if invalid.

        The result is ``INVALID`` when nothing at ``path`` could be read.
        Parts of a partial value that failed are ``INVALID``, so a check on
        it must skip them.
        """
        if value is not INVALID:
            return value
        return self.partials.get(path, INVALID)

    def line_of(self, path: FieldPath) -> int:
        """Return the line where ``path`` was written, or of its nearest parent."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), 1)

    # Dispatch on the type hint.

    def read(self, hint: Any, node: Node, path: FieldPath) -> Any:
        """Convert ``node`` to ``hint``; return ``INVALID`` after reporting."""
        self.positions.setdefault(path, node.line)
        if isinstance(node, Scalar) and node.tag == INVALID_TAG:
            return INVALID

        origin = typing.get_origin(hint)
        if hint is Any or hint is object:
            return self._read_plain_data(node, path)
        if origin in (typing.Union, types.UnionType):
            return self._read_union(hint, node, path)
        if origin is Literal:
            return self._read_literal(hint, node, path)
        if origin is not None and _is_mapping_origin(origin):
            return self._read_mapping(hint, node, path)
        if origin in (tuple, AbcSequence, list):
            return self._read_tuple(hint, node, path)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.read_dataclass(hint, node, path)
        scalar_reader = _SCALAR_READERS.get(hint)
        if scalar_reader is None:
            raise TypeError(f"The config loader cannot read fields of type {hint!r}.")

        if not isinstance(node, Scalar):
            self.expect(hint, node, path)
            return INVALID

        return scalar_reader(self, node, path)

    def peek(self, hint: Any, node: Node, path: FieldPath) -> Any:
        """Read like ``read``, but discard problems and return ``INVALID`` if any."""
        saved = self.document.problems
        saved_partials = self.partials
        self.document.problems = []
        self.partials = {}
        try:
            value = self.read(hint, node, path)
            clean = not self.document.problems
        finally:
            self.document.problems = saved
            self.partials = saved_partials
        return value if clean else INVALID

    def expect(self, hint: Any, node: Node, path: FieldPath, fix: str = "") -> None:
        """Report that ``node`` is not of type ``hint``."""
        message = f"Expected {describe_type(hint)}, got {describe_node(node)}."
        self.report(node.line, path, f"{message} {fix}".rstrip())

    def _read_union(self, hint: Any, node: Node, path: FieldPath) -> Any:
        options = typing.get_args(hint)
        if type(None) in options and isinstance(node, Scalar) and node.null:
            return None

        options = tuple(option for option in options if option is not type(None))
        if len(options) == 1:
            return self.read(options[0], node, path)

        # Try each alternative alone and keep the first that reads without problems.
        for option in options:
            value = self.peek(option, node, path)
            if value is not INVALID:
                return value

        self.expect(hint, node, path)
        return INVALID

    def _read_literal(self, hint: Any, node: Node, path: FieldPath) -> Any:
        choices = [str(choice) for choice in typing.get_args(hint)]
        text = self.read_text(node, path, hint)
        if text is INVALID:
            return INVALID

        for choice in typing.get_args(hint):
            if str(choice) == text:
                return choice

        self.report(
            node.line,
            path,
            f"Invalid value {text!r}.{suggest(text, choices)} "
            f"The allowed values are {join_choices(choices)}.",
        )
        return INVALID

    def _read_mapping(self, hint: Any, node: Node, path: FieldPath) -> Any:
        key_type, value_type = typing.get_args(hint) or (str, Any)
        if key_type is not str:
            raise TypeError(f"The config loader reads only string keys, not {hint!r}.")
        if not isinstance(node, Mapping):
            self.expect(hint, node, path, "Write it as {key: value, ...}.")
            return INVALID

        result: dict[str, Any] = {}
        valid = True
        for key, value_node in node.entries:
            item_path = (*path, key.value)
            self.positions.setdefault(item_path, key.line)
            if self._has_reference(key.value):
                self._report_reference(key, item_path)
                valid = False
                continue

            value = self.read(value_type, value_node, item_path)
            if value is INVALID:
                valid = False
            result[key.value] = self.salvage(value, item_path)
        return result if valid else self.reject(path, result)

    def _read_tuple(self, hint: Any, node: Node, path: FieldPath) -> Any:
        arguments = typing.get_args(hint)
        item_type = arguments[0] if arguments else Any
        if typing.get_origin(hint) is tuple and arguments[1:] != (Ellipsis,):
            raise TypeError(
                f"The config loader reads only tuple[X, ...], not {hint!r}."
            )
        if not isinstance(node, Sequence):
            self.expect(
                hint, node, path, "Write it as [a, b] or as lines starting '- '."
            )
            return INVALID

        items = [
            self.read(item_type, item, (*path, index))
            for index, item in enumerate(node.items)
        ]
        if any(item is INVALID for item in items):
            partial = tuple(
                self.salvage(item, (*path, index)) for index, item in enumerate(items)
            )
            return self.reject(path, partial)
        return tuple(items)

    # Dataclasses.

    def read_dataclass(
        self,
        cls: type,
        node: Node,
        path: FieldPath,
        *,
        fixed: AbcMapping[str, object] | None = None,
        defaults: AbcMapping[str, object] | None = None,
        custom: AbcMapping[str, CustomReader] | None = None,
        also_allowed: Collection[str] = (),
    ) -> Any:
        """Read a mapping node into the keyword-only dataclass ``cls``.

        Parameters
        ----------
        fixed : mapping, optional
            Field values set by the loader; their keys are not accepted in
            YAML. An ``INVALID`` value makes the result ``INVALID``.
        defaults : mapping, optional
            Values for fields whose key is absent, in place of the dataclass
            defaults; a required field listed here becomes optional.
        custom : mapping, optional
            Functions that read the value node of a field, by field name.
        also_allowed : collection of str, optional
            Keys read by someone else from the same mapping; they count for
            "did you mean" suggestions only.
        """
        fixed = fixed or {}
        defaults = defaults or {}
        custom = custom or {}
        if not isinstance(node, Mapping):
            self.expect(
                cls, node, path, f"Write the keys {self._key_list(cls, fixed)}."
            )
            return INVALID

        hints = _type_hints(cls)
        fields = {
            yaml_name(item.name): item
            for item in dataclasses.fields(cls)
            if item.init and item.name not in fixed
        }
        values: dict[str, Any] = dict(fixed)
        valid = True
        key_lines = {key.value: key.line for key, _ in node.entries}
        for key, value_node in node.entries:
            item_path = (*path, key.value)
            self.positions.setdefault(item_path, key.line)
            item = fields.get(key.value)
            if item is None:
                self.report_unknown_key(key, item_path, [*fields, *also_allowed])
                valid = False
                continue

            reader = custom.get(item.name)
            if reader is not None:
                value = reader(value_node, item_path)
            else:
                value = self.read(hints[item.name], value_node, item_path)
            values[item.name] = value
            if value is INVALID:
                valid = False
                values[item.name] = self.salvage(value, item_path)

        for name, item in fields.items():
            if item.name in values:
                continue
            if item.name in defaults:
                values[item.name] = defaults[item.name]
            elif _is_required(item):
                self.report(node.line, (*path, name), f"Missing required key {name!r}.")
                values[item.name] = INVALID

        if not valid or any(value is INVALID for value in values.values()):
            return self.reject(path, _build_partial(cls, values))

        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            # A dataclass may validate its own fields in __post_init__.
            if isinstance(error, FieldValueError) and error.field in key_lines:
                field = error.field
                self.report(key_lines[field], (*path, field), str(error))
            else:
                self.report(node.line, path, str(error))
            return self.reject(path, _build_partial(cls, values))

    def report_unknown_key(
        self, key: Scalar, path: FieldPath, allowed: Collection[str]
    ) -> None:
        hint = suggest(key.value, allowed)
        if not hint:
            hint = f" The allowed keys are {join_choices(sorted(set(allowed)))}."
        self.report(key.line, path, f"Unknown key {key.value!r}.{hint}")

    @staticmethod
    def _key_list(cls: type, fixed: AbcMapping[str, object]) -> str:
        names = [
            yaml_name(item.name)
            for item in dataclasses.fields(cls)
            if item.init and item.name not in fixed
        ]
        return join_choices(names)

    # Scalars.

    def read_text(self, node: Node, path: FieldPath, hint: Any = str) -> Any:
        """Return the text of a scalar that is not a secret, or ``INVALID``."""
        if not isinstance(node, Scalar):
            self.expect(hint, node, path)
            return INVALID
        if node.null:
            self.expect(hint, node, path)
            return INVALID
        if self._has_reference(node.value):
            self._report_reference(node, path)
            return INVALID
        return _unescape(node.value)

    def read_number_text(self, node: Scalar, path: FieldPath, hint: Any) -> Any:
        """Return the text of a plain scalar meant as a number, or ``INVALID``."""
        text = self.read_text(node, path, hint)
        if text is INVALID:
            return INVALID
        if not node.plain:
            self.expect(hint, node, path, "Remove the quotes.")
            return INVALID

        zero = _LEADING_ZERO_INT.fullmatch(text)
        if zero:
            sign, digits = zero.groups()
            self.report(
                node.line,
                path,
                f"Invalid number {text!r}: YAML 1.1 reads a leading zero as octal. "
                f"Write {sign.lstrip('+')}{int(digits)}, or quote the value if it "
                "is meant as text.",
            )
            return INVALID
        return text

    def _has_reference(self, text: str) -> bool:
        return any(not match.group(1) for match in _ENV_REFERENCE.finditer(text))

    def _report_reference(self, node: Scalar, path: FieldPath) -> None:
        self.report(
            node.line,
            path,
            "This field does not accept environment references such as "
            "${NAME}; write the value itself, or write $${NAME} for the "
            "literal text.",
        )

    def read_secret(self, node: Scalar, path: FieldPath) -> Any:
        if node.null:
            self.expect(Secret, node, path)
            return INVALID

        names: list[str] = []
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            escape, name = match.groups()
            if escape:
                return "${" + name + "}"
            names.append(name)
            value = self.environ.get(name)
            if value is None:
                missing.append(name)
                return ""
            return value

        value = _ENV_REFERENCE.sub(substitute, node.value)
        for name in dict.fromkeys(missing):
            self.report(
                node.line,
                path,
                f"The environment variable {name!r} is not set; set it, or "
                "write the value into the file.",
            )
        if missing:
            return INVALID
        return Secret(value, ",".join(dict.fromkeys(names)))

    def _read_plain_data(self, node: Node, path: FieldPath) -> Any:
        """Read untyped data with the YAML 1.2 core schema: dicts, lists, scalars."""
        if isinstance(node, Mapping):
            return self._read_mapping(AbcMapping[str, Any], node, path)
        if isinstance(node, Sequence):
            items = self._read_tuple(tuple[Any, ...], node, path)
            return items if items is INVALID else list(items)
        if node.null:
            return None
        if not node.plain:
            return self.read_text(node, path)
        if node.value in _TRUE_WORDS or node.value in _FALSE_WORDS:
            return node.value in _TRUE_WORDS
        if _INT.fullmatch(node.value) or _LEADING_ZERO_INT.fullmatch(node.value):
            return _read_int(self, node, path)
        if _FLOAT.fullmatch(node.value) or _NON_FINITE.fullmatch(node.value):
            return _read_float(self, node, path)
        return self.read_text(node, path)


def _unescape(text: str) -> str:
    return _ENV_REFERENCE.sub(
        lambda match: "${" + match.group(2) + "}" if match.group(1) else match.group(0),
        text,
    )


def _build_partial(cls: type, values: AbcMapping[str, Any]) -> Any:
    """Build ``cls`` from ``values`` without running ``__init__``.

    Fields absent from ``values`` take their default, or ``INVALID`` if they
    have none, and ``__post_init__`` does not run, so the result may hold
    values that the class itself would reject.
    """
    partial: Any = object.__new__(cls)
    for item in dataclasses.fields(cls):
        if item.name in values:
            value = values[item.name]
        elif item.default is not dataclasses.MISSING:
            value = item.default
        elif item.default_factory is not dataclasses.MISSING:
            value = item.default_factory()
        else:
            value = INVALID
        # Frozen dataclasses block setattr, and __init__ sets fields this way too.
        object.__setattr__(partial, item.name, value)
    return partial


def _is_required(item: dataclasses.Field[Any]) -> bool:
    return (
        item.default is dataclasses.MISSING
        and item.default_factory is dataclasses.MISSING
    )


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    hints = _HINT_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINT_CACHE[cls] = hints
    return hints


def _read_str(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    return reader.read_text(node, path, str)


def _read_int(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    text = reader.read_number_text(node, path, int)
    if text is INVALID:
        return INVALID
    if _INT.fullmatch(text):
        return int(text)
    if _HEX_INT.fullmatch(text) or _OCTAL_INT.fullmatch(text):
        return int(text, 0)

    fix = ""
    if _FLOAT.fullmatch(text) and float(text).is_integer():
        fix = f"Write {int(float(text))}."
    reader.expect(int, node, path, fix)
    return INVALID


def _read_float(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    text = reader.read_number_text(node, path, float)
    if text is INVALID:
        return INVALID
    if _NON_FINITE.fullmatch(text):
        reader.report(
            node.line, path, f"Invalid number {text!r}; write a finite number."
        )
        return INVALID
    if _FLOAT.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
    if _HEX_INT.fullmatch(text) or _OCTAL_INT.fullmatch(text):
        return float(int(text, 0))

    fix = ""
    if ":" in text:
        fix = "Sexagesimal numbers such as 1:30 are not read; write 90."
    reader.expect(float, node, path, fix)
    return INVALID


def _read_bool(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    if node.plain and node.value in _TRUE_WORDS:
        return True
    if node.plain and node.value in _FALSE_WORDS:
        return False

    if node.plain and node.value.lower() in _YAML11_BOOLEANS:
        reader.report(
            node.line,
            path,
            f"Invalid boolean {node.value!r}: only true and false are booleans; "
            "write true or false.",
        )
        return INVALID

    fix = "Remove the quotes." if not node.plain else "Write true or false."
    reader.expect(bool, node, path, fix)
    return INVALID


def _read_timedelta(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    text = reader.read_text(node, path, timedelta)
    if text is INVALID:
        return INVALID
    if text == "0":
        return timedelta(0)

    try:
        return parse_duration(text)
    except DurationError as error:
        reader.report(node.line, path, str(error))
        return INVALID


def _read_datetime(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    text = reader.read_text(node, path, datetime)
    if text is INVALID:
        return INVALID

    value = _parse_timestamp(text.strip())
    if value is None:
        reader.report(
            node.line,
            path,
            f"Invalid timestamp {text!r}; write an ISO 8601 timestamp such as "
            "2025-01-06 or 2025-01-06T09:00:00Z.",
        )
        return INVALID
    return value


def _parse_timestamp(text: str) -> datetime | None:
    """Parse ISO 8601 or a YAML timestamp into UTC, reading a naive time as UTC."""
    parsed: object
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if not yaml.SafeLoader.timestamp_regexp.fullmatch(text):
            return None
        timestamp_node = yaml.ScalarNode("tag:yaml.org,2002:timestamp", text)
        try:
            loader = yaml.SafeLoader("")
            parsed = loader.construct_yaml_timestamp(timestamp_node)
        except ValueError:
            return None

    if isinstance(parsed, datetime):
        value = parsed
    elif isinstance(parsed, date):
        value = datetime(parsed.year, parsed.month, parsed.day)
    else:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _read_path(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    text = reader.read_text(node, path, Path)
    if text is INVALID:
        return INVALID
    return Path(text)


def _read_secret(reader: Reader, node: Scalar, path: FieldPath) -> Any:
    return reader.read_secret(node, path)


_SCALAR_READERS: dict[Any, Callable[[Reader, Scalar, FieldPath], Any]] = {
    str: _read_str,
    int: _read_int,
    float: _read_float,
    bool: _read_bool,
    timedelta: _read_timedelta,
    datetime: _read_datetime,
    Path: _read_path,
    Secret: _read_secret,
}


def empty_mapping(line: int, column: int = 1) -> Mapping:
    """Return an empty mapping node placed at ``line``, for absent sections."""
    return Mapping(entries=(), line=line, column=column)
