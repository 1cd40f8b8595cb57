"""YAML documents as trees of nodes that keep their line and column.

PyYAML composes the document with ``yaml.SafeLoader``, so no Python tag is
ever constructed. Plain scalars keep the text the author wrote: whether
``yes`` or ``0100`` is a boolean, a number or a string is decided later by the
type of the field that reads it, not by YAML 1.1's implicit resolvers.

Aliases are expanded here, with a bound on the nodes they add, so that later
walks over the tree are linear in its size. Merge keys (``<<: *anchor``) are
applied here too, and duplicate keys are reported for every mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

PLAIN_TAG = "!krwatch/plain"
"""Tag given to plain (unquoted, untagged) scalars."""

STR_TAG = "tag:yaml.org,2002:str"
INVALID_TAG = "!krwatch/invalid"
"""Tag of a node that carried an unsupported tag; its problem is reported."""
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_ALLOWED_TAGS = {PLAIN_TAG, STR_TAG, _SEQ_TAG, _MAP_TAG}
_MERGE_KEY = "<<"

MAX_ALIAS_NODES = 100_000
"""Maximum number of nodes that alias expansion may add to one document.

Plain documents are not limited, since composing them is linear in the file
size; the bound stops documents such as "billion laughs" whose aliases
expand exponentially.
"""

MAX_DEPTH = 100
"""Maximum nesting of mappings and sequences in one document."""

_NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One problem of a file, formatted ``path:line: field.path: message``."""

    file: str
    line: int
    message: str
    field_path: str = ""
    column: int | None = None

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}"
        if self.column is not None:
            location = f"{location}:{self.column}"
        if self.field_path:
            return f"{location}: {self.field_path}: {self.message}"
        return f"{location}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Scalar:
    """A scalar with the exact text the author wrote and where it is.

    ``style`` is ``None`` for plain scalars, ``'`` or ``"`` for quoted ones,
    and ``|`` or ``>`` for block scalars. Lines and columns are 1-based.
    """

    value: str
    tag: str
    style: str | None
    line: int
    column: int
    end_line: int

    @property
    def plain(self) -> bool:
        return self.tag == PLAIN_TAG

    @property
    def null(self) -> bool:
        """Whether the scalar is YAML's null: empty, ``~`` or ``null``."""
        return self.plain and self.value in _NULL_WORDS


@dataclass(frozen=True, kw_only=True)
class Sequence:
    items: tuple[Node, ...]
    line: int
    column: int


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """A mapping whose keys are unique; duplicates were reported and dropped."""

    entries: tuple[tuple[Scalar, Node], ...]
    line: int
    column: int

    def get(self, key: str) -> Node | None:
        for name, value in self.entries:
            if name.value == key:
                return value
        return None

    def keys(self) -> list[str]:
        return [name.value for name, _ in self.entries]


Node = Scalar | Sequence | Mapping


@dataclass(kw_only=True)
class Document:
    """The root node of one file, the file's lines, and the problems found."""

    file: str
    root: Node | None
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def format_field_path(parts: tuple[str | int, ...]) -> str:
    """Format ``("kpis", 2, "query")`` as ``kpis[2].query``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text


def read_document(path: Path, display: str) -> Document:
    """Read and compose one YAML file.

    Problems with the file itself (missing, unreadable, not UTF-8, invalid
    YAML) leave ``root`` as ``None``. Problems inside a valid document, such
    as duplicate keys, are listed, and ``root`` is still returned.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _failed(display, "File not found; check the path.")
    except IsADirectoryError:
        return _failed(display, "The path is a folder; give the path of a file.")
    except OSError as error:
        message = f"Cannot read the file: {error.strerror}; check its permissions."
        return _failed(display, message)

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        message = (
            f"The file is not valid UTF-8 (byte {data[error.start]:#04x}); "
            "save it as UTF-8."
        )
        return _failed(display, message, line)

    return parse_document(text, display)


def parse_document(text: str, display: str) -> Document:
    """Compose YAML ``text`` into a ``Document``; ``display`` names it in problems."""
    document = Document(file=display, root=None, lines=text.splitlines())
    try:
        node = yaml.compose(text, Loader=_ComposeLoader)
    except yaml.MarkedYAMLError as error:
        document.problems.append(_syntax_problem(display, document.lines, error))
        return document
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        character = error.character
        if isinstance(character, str):
            character = ord(character)
        message = (
            f"Invalid YAML: the character U+{character:04X} is not allowed; remove it."
        )
        document.problems.append(Problem(file=display, line=line, message=message))
        return document
    except RecursionError:
        message = f"The document nests more than {MAX_DEPTH} levels; flatten it."
        document.problems.append(Problem(file=display, line=1, message=message))
        return document

    if node is None:
        return document

    converter = _Converter(display)
    document.root = converter.convert(node, (), 0)
    document.problems.extend(converter.problems)
    if converter.aborted:
        document.root = None
    return document


def _failed(display: str, message: str, line: int = 1) -> Document:
    problem = Problem(file=display, line=line, message=message)
    return Document(file=display, root=None, problems=[problem])


def _syntax_problem(
    display: str, lines: list[str], error: yaml.MarkedYAMLError
) -> Problem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else None
    parts = [part for part in (error.context, error.problem) if part]
    detail = ", ".join(parts) if parts else "the text cannot be parsed"
    message = f"Invalid YAML: {detail}."
    if mark is not None and _character_at(lines, mark.line, mark.column) == "\t":
        message += " Indent with spaces, not tabs."
    return Problem(file=display, line=line, column=column, message=message)


def _character_at(lines: list[str], line: int, column: int) -> str:
    if 0 <= line < len(lines) and 0 <= column < len(lines[line]):
        return lines[line][column]
    return ""


def _resolve_tag(
    loader: yaml.resolver.BaseResolver,
    kind: type[yaml.Node],
    value: str | None,
    implicit: object,
) -> str:
    """Resolve tags as SafeLoader does, except that plain scalars keep their text."""
    if kind is yaml.ScalarNode and isinstance(implicit, tuple) and implicit[0]:
        return PLAIN_TAG
    return str(yaml.resolver.BaseResolver.resolve(loader, kind, value, implicit))


def make_compose_loader(base: type) -> type:
    """Return a subclass of a safe loader that composes with ``_resolve_tag``."""
    return type("ComposeLoader", (base,), {"resolve": _resolve_tag})


# libyaml's parser, when PyYAML was built with it, composes large files about
# ten times faster than the pure Python one; both follow SafeLoader's rules.
_ComposeLoader = make_compose_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class _AbortError(Exception):
    """The document exceeds a bound; the conversion stops."""


class _Converter:
    """Turn composed PyYAML nodes into ``Scalar``, ``Sequence`` and ``Mapping``."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.problems: list[Problem] = []
        self.aborted = False
        self._seen: set[int] = set()
        self._open: set[int] = set()
        self._alias_nodes = 0

    def convert(self, node: yaml.Node, path: tuple[str | int, ...], depth: int) -> Node:
        try:
            return self._convert(node, path, depth)
        except _AbortError:
            self.aborted = True
            return Mapping(entries=(), line=1, column=1)

    def _report(
        self, node: yaml.Node, path: tuple[str | int, ...], message: str
    ) -> None:
        problem = Problem(
            file=self.display,
            line=node.start_mark.line + 1,
            field_path=format_field_path(path),
            message=message,
        )
        self.problems.append(problem)

    def _convert(
        self, node: yaml.Node, path: tuple[str | int, ...], depth: int
    ) -> Node:
        identity = id(node)
        if identity in self._open:
            self._report(
                node, path, "The alias refers to a node that contains it; remove it."
            )
            raise _AbortError

        if identity in self._seen:
            self._alias_nodes += 1
            if self._alias_nodes > MAX_ALIAS_NODES:
                self._report(
                    node,
                    path,
                    f"Aliases expand the document beyond {MAX_ALIAS_NODES} nodes; "
                    "write the repeated values out or use fewer nested aliases.",
                )
                raise _AbortError
        self._seen.add(identity)

        if depth > MAX_DEPTH:
            message = f"The document nests more than {MAX_DEPTH} levels; flatten it."
            self._report(node, path, message)
            raise _AbortError

        if node.tag not in _ALLOWED_TAGS:
            self._report(
                node,
                path,
                f"The tag {node.tag!r} is not supported; remove it, and quote the "
                "value if it is meant as a string.",
            )
            start = node.start_mark
            return Scalar(
                value="",
                tag=INVALID_TAG,
                style=None,
                line=start.line + 1,
                column=start.column + 1,
                end_line=node.end_mark.line + 1,
            )

        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)

        self._open.add(identity)
        try:
            if isinstance(node, yaml.SequenceNode):
                items = tuple(
                    self._convert(item, (*path, index), depth + 1)
                    for index, item in enumerate(node.value)
                )
                start = node.start_mark
                return Sequence(
                    items=items, line=start.line + 1, column=start.column + 1
                )

            assert isinstance(node, yaml.MappingNode)  # the third node kind
            return self._mapping(node, path, depth)
        finally:
            self._open.discard(identity)

    @staticmethod
    def _scalar(node: yaml.ScalarNode) -> Scalar:
        tag = node.tag if node.tag in (PLAIN_TAG, STR_TAG) else STR_TAG
        return Scalar(
            value=node.value,
            tag=tag,
            style=node.style,
            line=node.start_mark.line + 1,
            column=node.start_mark.column + 1,
            end_line=node.end_mark.line + 1,
        )

    def _mapping(
        self, node: yaml.MappingNode, path: tuple[str | int, ...], depth: int
    ) -> Mapping:
        explicit: dict[str, tuple[Scalar, Node]] = {}
        merged: dict[str, tuple[Scalar, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(
                    key_node, path, "A key must be a plain string, not a collection."
                )
                continue

            key = self._scalar(key_node)
            if key.plain and key.value == _MERGE_KEY:
                value = self._convert(value_node, path, depth + 1)
                self._merge(value, key_node, path, merged)
                continue

            value = self._convert(value_node, (*path, key.value), depth + 1)
            if key.value in explicit:
                first = explicit[key.value][0]
                where = f"at lines {first.line} and {key.line}"
                if first.line == key.line:
                    where = f"twice on line {key.line}"
                self._report(
                    key_node,
                    (*path, key.value),
                    f"Duplicate key {key.value!r} {where}; remove one of them.",
                )
                continue

            explicit[key.value] = (key, value)

        entries = {**merged, **explicit}
        start = node.start_mark
        return Mapping(
            entries=tuple(entries.values()),
            line=start.line + 1,
            column=start.column + 1,
        )

    def _merge(
        self,
        value: Node,
        key_node: yaml.Node,
        path: tuple[str | int, ...],
        merged: dict[str, tuple[Scalar, Node]],
    ) -> None:
        # Earlier mappings in a merge list take precedence over later ones.
        sources = value.items if isinstance(value, Sequence) else (value,)
        for source in sources:
            if not isinstance(source, Mapping):
                self._report(
                    key_node,
                    path,
                    "A merge key '<<' takes a mapping or a list of mappings, such "
                    "as <<: *defaults.",
                )
                return

            for key, item in source.entries:
                merged.setdefault(key.value, (key, item))
