"""Read the main configuration file into ``Config``, reporting every problem."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config._checks import check_config
from monitor.config._schema import (
    INVALID,
    FieldPath,
    Reader,
    empty_mapping,
    join_choices,
    suggest,
)
from monitor.config._yaml import Mapping, Node, Problem, Scalar, Sequence, read_document
from monitor.config.model import (
    Config,
    EvaluationConfig,
    KeyResultConfig,
    KPIConfig,
    ObjectiveConfig,
    ReceiverConfig,
    RouteConfig,
    ServerConfig,
    SourceConfig,
    StorageConfig,
)
from monitor.errors import ConfigError

_SOURCE_KEYS = frozenset({"name", "type", "interval", "timeout"})
_RECEIVER_KEYS = frozenset({"name", "type"})
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(kw_only=True)
class Parsed:
    """The parts of one configuration file that could be read, with indices.

    A section or item with problems is kept as the partial value from
    ``Reader.salvage``, with ``INVALID`` in each field that failed.
    Cross-reference checks run on these even when other parts are invalid,
    so one run reports every problem of the file.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    route: RouteConfig | None = None
    rule_files: tuple[str, ...] = ()
    sources: list[tuple[int, SourceConfig]] = field(default_factory=list)
    kpis: list[tuple[int, KPIConfig]] = field(default_factory=list)
    objectives: list[tuple[int, ObjectiveConfig]] = field(default_factory=list)
    key_results: list[tuple[FieldPath, KeyResultConfig]] = field(default_factory=list)
    names: dict[str, list[tuple[FieldPath, str]]] = field(default_factory=dict)
    """Names written in each list section, such as ``sources``, including
    items with other problems; key results are listed as ``key_results``."""
    source_types: dict[str, str] = field(default_factory=dict)
    """Type written for each source name, including invalid sources."""
    receivers: list[tuple[int, ReceiverConfig]] = field(default_factory=list)


@dataclass(kw_only=True)
class LoadResult:
    """Outcome of reading the configuration file."""

    config: Config | None
    problems: list[Problem]
    rule_paths: tuple[Path, ...] = ()
    kpi_names: frozenset[str] = frozenset()
    key_result_names: frozenset[str] = frozenset()


def load(
    path: str | os.PathLike[str],
    *,
    environ: AbcMapping[str, str],
    source_types: AbcMapping[str, Any],
    receiver_types: AbcMapping[str, Any],
) -> LoadResult:
    """Read, map and check the configuration file at ``path``."""
    display = os.fspath(path)
    absolute = Path(display).absolute()
    document = read_document(absolute, display)
    if document.root is None:
        if not document.problems:
            message = "The file is empty; write the configuration as a YAML mapping."
            document.problems.append(Problem(file=display, line=1, message=message))
        return LoadResult(config=None, problems=document.problems)

    reader = Reader(document, environ)
    parsed = Parsed()
    sections = _Sections(reader, parsed, source_types, receiver_types)
    config = reader.read_dataclass(
        Config,
        document.root,
        (),
        fixed={"path": absolute},
        custom={
            "server": sections.keep("server", ServerConfig),
            "storage": sections.keep("storage", StorageConfig),
            "evaluation": sections.keep("evaluation", EvaluationConfig),
            "route": sections.keep("route", RouteConfig | None),
            "rule_files": sections.keep("rule_files", tuple[str, ...]),
            "sources": sections.read_sources,
            "kpis": sections.read_kpis,
            "objectives": sections.read_objectives,
            "receivers": sections.read_receivers,
        },
    )

    check_config(reader, parsed)
    patterns = tuple(item for item in parsed.rule_files if item is not INVALID)
    rule_paths = _check_rule_files(reader, absolute.parent, patterns)

    problems = sorted(document.problems, key=lambda problem: problem.line)
    if config is INVALID and not problems:
        raise RuntimeError(
            f"{display}: the configuration is invalid, but no problem was reported."
        )
    return LoadResult(
        config=None if problems else config,
        problems=problems,
        rule_paths=rule_paths,
        kpi_names=frozenset(name for _, name in parsed.names.get("kpis", ())),
        key_result_names=frozenset(
            name for _, name in parsed.names.get("key_results", ())
        ),
    )


def load_storage(path: str | os.PathLike[str]) -> Config:
    """Read only the ``storage`` section of the configuration file at ``path``.

    Returns a ``Config`` whose other sections are the defaults. Tools that
    open the store beside a running daemon, such as ``krwatch silence``, use
    it, so they need none of the environment variables of the secrets.

    Raises
    ------
    ConfigError
        If the file cannot be read or its ``storage`` section is invalid.
    """
    display = os.fspath(path)
    absolute = Path(display).absolute()
    document = read_document(absolute, display)
    storage: object = StorageConfig()
    if isinstance(document.root, Mapping):
        node = document.root.get("storage")
        if node is not None:
            reader = Reader(document, environ={})
            storage = reader.read_dataclass(StorageConfig, node, ("storage",))
    elif document.root is not None:
        message = (
            "The file is not a mapping; write the configuration as a YAML mapping."
        )
        document.problems.append(Problem(file=display, line=1, message=message))
    if document.problems or storage is INVALID:
        raise ConfigError([str(problem) for problem in document.problems])
    assert isinstance(storage, StorageConfig)
    return Config(path=absolute, storage=storage)


def resolve_rule_files(config: Config) -> tuple[Path, ...]:
    """Return the rule files that ``config.rule_files`` names, in order.

    Globs are resolved against the folder of the configuration file. A file
    matched by several globs is listed once.
    """
    return _resolve(config.path.parent, config.rule_files)


def _resolve(folder: Path, patterns: tuple[str, ...]) -> tuple[Path, ...]:
    paths: dict[Path, None] = {}
    for pattern in patterns:
        for match in _expand(folder, pattern):
            paths.setdefault(match, None)
    return tuple(paths)


def _expand(folder: Path, pattern: str) -> list[Path]:
    # root_dir keeps glob characters in the folder's own name from matching.
    matches = glob.glob(pattern, root_dir=folder, recursive=True)
    files = [folder / match for match in matches]
    return sorted(match for match in files if match.is_file())


def _check_rule_files(
    reader: Reader, folder: Path, patterns: tuple[str, ...]
) -> tuple[Path, ...]:
    for index, pattern in enumerate(patterns):
        if _expand(folder, pattern):
            continue
        path: FieldPath = ("rule_files", index)
        if _GLOB_CHARACTERS.isdisjoint(pattern):
            message = (
                f"Rule file {pattern!r} not found in {str(folder)!r}; "
                "paths are relative to the folder of this file."
            )
        else:
            message = (
                f"The glob {pattern!r} matches no file in "
                f"{str(folder)!r}; paths are relative to the folder "
                "of this file."
            )
        reader.report(reader.line_of(path), path, message)
    return _resolve(folder, patterns)


class _Sections:
    """Readers of the list sections whose items depend on a plug-in type."""

    def __init__(
        self,
        reader: Reader,
        parsed: Parsed,
        source_types: AbcMapping[str, Any],
        receiver_types: AbcMapping[str, Any],
    ) -> None:
        self.reader = reader
        self.parsed = parsed
        self.source_types = source_types
        self.receiver_types = receiver_types

    def keep(self, name: str, hint: Any) -> Callable[[Node, FieldPath], Any]:
        """Return a reader of one section that also keeps it in ``parsed``."""

        def read_section(node: Node, path: FieldPath) -> Any:
            value = self.reader.read(hint, node, path)
            salvaged = self.reader.salvage(value, path)
            if salvaged is not INVALID:
                setattr(self.parsed, name, salvaged)
            return value

        return read_section

    def read_list(
        self,
        node: Node,
        path: FieldPath,
        read_item: Callable[[Node, FieldPath, int], Any],
        kept_items: list[tuple[int, Any]],
    ) -> Any:
        if not isinstance(node, Sequence):
            self.reader.expect(tuple[Any, ...], node, path, "Write one '- ' per item.")
            return INVALID

        items = []
        names = self.parsed.names.setdefault(str(path[-1]), [])
        for index, item_node in enumerate(node.items):
            item_path = (*path, index)
            self.reader.positions.setdefault(item_path, item_node.line)
            name = _scalar_text(item_node, "name")
            if name is not None:
                names.append((item_path, name))
            item = read_item(item_node, item_path, index)
            salvaged = self.reader.salvage(item, item_path)
            if salvaged is not INVALID:
                kept_items.append((index, salvaged))
            items.append(item)
        if any(item is INVALID for item in items):
            return INVALID
        return tuple(items)

    # Sources and receivers: common keys plus the settings of their type.

    def read_sources(self, node: Node, path: FieldPath) -> Any:
        return self.read_list(node, path, self._read_source, self.parsed.sources)

    def _read_source(self, node: Node, path: FieldPath, index: int) -> Any:
        name, type_name = _scalar_text(node, "name"), _scalar_text(node, "type")
        if name is not None and type_name is not None:
            self.parsed.source_types.setdefault(name, type_name)
        return self._read_typed(
            node, path, SourceConfig, _SOURCE_KEYS, self.source_types, "source"
        )

    def read_receivers(self, node: Node, path: FieldPath) -> Any:
        return self.read_list(node, path, self._read_receiver, self.parsed.receivers)

    def _read_receiver(self, node: Node, path: FieldPath, index: int) -> Any:
        return self._read_typed(
            node, path, ReceiverConfig, _RECEIVER_KEYS, self.receiver_types, "receiver"
        )

    def _read_typed(
        self,
        node: Node,
        path: FieldPath,
        cls: type,
        common_keys: frozenset[str],
        registry: AbcMapping[str, Any],
        role: str,
    ) -> Any:
        reader = self.reader
        if not isinstance(node, Mapping):
            return reader.read_dataclass(cls, node, path)

        common = [entry for entry in node.entries if entry[0].value in common_keys]
        rest = [entry for entry in node.entries if entry[0].value not in common_keys]
        settings: Any = INVALID
        plugin = self._lookup_type(node, path, registry, role)
        if plugin is not None:
            settings_class = getattr(plugin, "settings_class", None)
            rest_node = Mapping(entries=tuple(rest), line=node.line, column=node.column)
            settings = self._read_settings(settings_class, rest_node, path, common_keys)

        common_node = Mapping(entries=tuple(common), line=node.line, column=node.column)
        return reader.read_dataclass(
            cls, common_node, path, fixed={"settings": settings}
        )

    def _lookup_type(
        self, node: Mapping, path: FieldPath, registry: AbcMapping[str, Any], role: str
    ) -> Any:
        type_node = node.get("type")
        if not isinstance(type_node, Scalar) or type_node.null:
            return None  # read_dataclass reports the missing or invalid type.

        plugin = registry.get(type_node.value)
        if plugin is None:
            known = sorted(registry)
            self.reader.report(
                type_node.line,
                (*path, "type"),
                f"Unknown {role} type {type_node.value!r}."
                f"{suggest(type_node.value, known)} "
                f"The known types are {join_choices(known)}.",
            )
        return plugin

    def _read_settings(
        self,
        settings_class: type | None,
        node: Mapping,
        path: FieldPath,
        common_keys: frozenset[str],
    ) -> Any:
        if settings_class is not None:
            return self.reader.read_dataclass(
                settings_class, node, path, also_allowed=common_keys
            )

        for key, _ in node.entries:
            self.reader.report_unknown_key(key, (*path, key.value), common_keys)
        return None if not node.entries else INVALID

    # KPIs: the query is read with the query class of the KPI's source type.

    def read_kpis(self, node: Node, path: FieldPath) -> Any:
        return self.read_list(node, path, self._read_kpi, self.parsed.kpis)

    def _read_kpi(self, node: Node, path: FieldPath, index: int) -> Any:
        reader = self.reader
        if not isinstance(node, Mapping):
            return reader.read_dataclass(KPIConfig, node, path)

        # Without a known source type the query cannot be checked; the source
        # reference check or the source itself reports why.
        query: Any = None
        query_class = self._query_class(node)
        query_node = node.get("query")
        if query_class is not None:
            if query_node is None:
                query_node = empty_mapping(node.line, node.column)
            query = reader.read_dataclass(query_class, query_node, (*path, "query"))
        elif self._source_type_known(node):
            # The source type reads no query, so a written query is an error.
            if query_node is not None:
                reader.report(
                    query_node.line,
                    (*path, "query"),
                    "This KPI's source type takes no query; remove the key.",
                )
                query = INVALID

        entries = tuple(entry for entry in node.entries if entry[0].value != "query")
        rest = Mapping(entries=entries, line=node.line, column=node.column)
        return reader.read_dataclass(KPIConfig, rest, path, fixed={"query": query})

    def _source_type_known(self, node: Mapping) -> bool:
        source = _scalar_text(node, "source")
        type_name = self.parsed.source_types.get(source or "")
        return type_name is not None and type_name in self.source_types

    def _query_class(self, node: Mapping) -> type | None:
        if not self._source_type_known(node):
            return None
        type_name = self.parsed.source_types[_scalar_text(node, "source") or ""]
        query_class: type | None = self.source_types[type_name].query_class
        return query_class

    # Objectives: key results take their objective's name and default owner.

    def read_objectives(self, node: Node, path: FieldPath) -> Any:
        return self.read_list(node, path, self._read_objective, self.parsed.objectives)

    def _read_objective(self, node: Node, path: FieldPath, index: int) -> Any:
        reader = self.reader
        if not isinstance(node, Mapping):
            return reader.read_dataclass(ObjectiveConfig, node, path)

        name_node = node.get("name")
        owner_node = node.get("owner")
        # Peek at name and owner first, because key_results may come before
        # them in the file; read_dataclass reports their problems once.
        objective_name: Any = INVALID
        if name_node is not None:
            objective_name = reader.peek(str, name_node, (*path, "name"))
        owner: Any = ""
        if owner_node is not None:
            owner = reader.peek(str, owner_node, (*path, "owner"))

        def read_key_results(value: Node, field_path: FieldPath) -> Any:
            def read_key_result(item: Node, item_path: FieldPath, _: int) -> Any:
                return self._read_key_result(item, item_path, objective_name, owner)

            valid: list[tuple[int, Any]] = []
            result = self.read_list(value, field_path, read_key_result, valid)
            for key_result_index, key_result in valid:
                self.parsed.key_results.append(
                    ((*field_path, key_result_index), key_result)
                )
            return result

        return reader.read_dataclass(
            ObjectiveConfig, node, path, custom={"key_results": read_key_results}
        )

    def _read_key_result(
        self, node: Node, path: FieldPath, objective: Any, owner: Any
    ) -> Any:
        reader = self.reader
        defaults: dict[str, object] = {}
        if owner is INVALID or owner:
            # An invalid objective owner was reported; it makes this INVALID.
            defaults["owner"] = owner
        elif isinstance(node, Mapping) and node.get("owner") is None:
            reader.report(
                node.line,
                (*path, "owner"),
                "Missing owner; set owner on the key result or on its objective.",
            )
            defaults["owner"] = INVALID

        return reader.read_dataclass(
            KeyResultConfig,
            node,
            path,
            fixed={"objective": objective},
            defaults=defaults,
        )


def _scalar_text(node: Node, key: str) -> str | None:
    """Return the text written for ``key`` in a mapping node, if it is a scalar."""
    if not isinstance(node, Mapping):
        return None
    value = node.get(key)
    if not isinstance(value, Scalar) or value.null:
        return None
    return value.value
