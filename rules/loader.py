"""Load rule files into ``RuleGroup`` tuples, reporting every problem.

A rule file is a mapping with one key, ``groups``, as in Prometheus. A rule
with ``expr`` is a threshold rule, one with ``when`` and ``require`` a
dependency rule, one with ``key_results`` and ``attainment_below`` a forecast
rule, and one with ``kpi`` and ``detector`` an anomaly rule. Expressions are
parsed with ``rules.expr.parse``, and a parse error is reported with its line,
column and a caret under the offending character. Detector parameters are
checked by the detector's own ``fit`` on an empty history.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Collection, Iterable
from collections.abc import Mapping as AbcMapping
from pathlib import Path
from typing import Any

from monitor.config import Config, resolve_rule_files
from monitor.config._schema import (
    INVALID,
    FieldPath,
    Reader,
    describe_known,
    join_choices,
    suggest,
    yaml_name,
)
from monitor.config._yaml import (
    Mapping,
    Node,
    Problem,
    Scalar,
    Sequence,
    format_field_path,
    read_document,
)
from monitor.errors import ConfigError
from rules import templates
from rules.model import (
    AnomalyRule,
    DependencyRule,
    DetectorSpec,
    ForecastRule,
    Location,
    Rule,
    RuleBase,
    RuleGroup,
    ThresholdRule,
)

logger = logging.getLogger(__name__)

_RULE_KINDS: dict[str, tuple[type, frozenset[str]]] = {
    "threshold": (ThresholdRule, frozenset({"expr"})),
    "dependency": (DependencyRule, frozenset({"when", "require"})),
    "forecast": (ForecastRule, frozenset({"key_results", "attainment_below"})),
    "anomaly": (AnomalyRule, frozenset({"kpi", "detector"})),
}
"""Rule kind name to its class and the keys that mark it."""

_PARSED_FIELDS = {
    ThresholdRule: {"expression": "expr"},
    DependencyRule: {"when_expression": "when", "require_expression": "require"},
}
"""Fields that hold a parsed expression, by rule class, with their text field."""

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_NamedGroup = tuple[int, RuleGroup, bool]
"""A group whose name could be read: its index in the file, the group, and
whether it is valid. An invalid group is a partial value from
``Reader.salvage``."""


def load_rule_file(
    path: str | os.PathLike[str],
    *,
    kpis: Collection[str] | None = None,
    key_results: Collection[str] | None = None,
) -> tuple[RuleGroup, ...]:
    """Load and validate one rule file.

    Parameters
    ----------
    path : str or path-like
        The rule file.
    kpis : collection of str, optional
        Names of the configured KPIs. When given, expressions must select
        only these.
    key_results : collection of str, optional
        Names of the configured key results. When given, forecast rules and
        expressions must name only these.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable or invalid, listing every problem.
    """
    groups, problems = collect_rule_files(
        [Path(path)], kpis=kpis, key_results=key_results
    )
    if problems:
        raise ConfigError([str(problem) for problem in problems])
    return groups


def load_rule_files(config: Config) -> tuple[RuleGroup, ...]:
    """Load every rule file that ``config.rule_files`` names.

    Globs resolve against the folder of the configuration file. Group names
    must be unique across all files, and rules must name KPIs and key results
    of ``config``.

    Raises
    ------
    ConfigError
        Listing every problem of every rule file.
    """
    groups, problems = collect_rule_files(
        resolve_rule_files(config),
        kpis=[kpi.name for kpi in config.kpis],
        key_results=[key_result.name for key_result in config.key_results],
    )
    if problems:
        raise ConfigError([str(problem) for problem in problems])
    return groups


def collect_rule_files(
    paths: Iterable[Path],
    *,
    kpis: Collection[str] | None = None,
    key_results: Collection[str] | None = None,
) -> tuple[tuple[RuleGroup, ...], list[Problem]]:
    """Read rule files and return their valid groups and every problem."""
    groups: list[RuleGroup] = []
    problems: list[Problem] = []
    first_groups: dict[str, RuleGroup] = {}
    for path in paths:
        file_groups, file_problems = _read_rule_file(path, kpis, key_results)
        for index, group, valid in file_groups:
            first = first_groups.setdefault(group.name, group)
            if first is not group:
                file_problems.append(_duplicate_group(path, index, group, first))
                continue
            if valid:
                groups.append(group)
        problems.extend(sorted(file_problems, key=lambda problem: problem.line))
    return tuple(groups), problems


def _display(path: Path) -> str:
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _duplicate_group(
    path: Path, index: int, group: RuleGroup, first: RuleGroup
) -> Problem:
    where = f"{_display(first.location.path)}:{first.location.line}"
    return Problem(
        file=_display(path),
        line=group.location.line,
        field_path=format_field_path(("groups", index, "name")),
        message=(
            f"Duplicate group name {group.name!r}; it is also used at {where}. "
            "Give each group a unique name."
        ),
    )


def _read_rule_file(
    path: Path, kpis: Collection[str] | None, key_results: Collection[str] | None
) -> tuple[list[_NamedGroup], list[Problem]]:
    """Read one rule file; return its named groups and every problem."""
    document = read_document(path, _display(path))
    if document.root is None:
        if not document.problems:
            # An editor that truncates a file before writing it, or a slip,
            # would otherwise drop every rule of the file on reload and
            # resolve their alerts.
            empty = Problem(
                file=_display(path),
                line=1,
                message=(
                    "The rule file is empty; add a 'groups:' list, or remove "
                    "the file from rule_files."
                ),
            )
            return [], [empty]
        return [], document.problems

    reader = Reader(document, environ={})
    file_reader = _RuleFileReader(reader, path, kpis, key_results)
    groups = file_reader.read(document.root)
    return groups, document.problems


class _RuleFileReader:
    def __init__(
        self,
        reader: Reader,
        path: Path,
        kpis: Collection[str] | None,
        key_results: Collection[str] | None,
    ) -> None:
        self.reader = reader
        self.path = path
        self.kpis = None if kpis is None else frozenset(kpis)
        self.key_results = None if key_results is None else frozenset(key_results)

    def read(self, root: Node) -> list[_NamedGroup]:
        reader = self.reader
        if not isinstance(root, Mapping):
            reader.report(
                root.line,
                (),
                f"Expected a mapping with the key 'groups', got {_describe(root)}.",
            )
            return []

        for key, _ in root.entries:
            if key.value != "groups":
                reader.report_unknown_key(key, (key.value,), ["groups"])
        groups_node = root.get("groups")
        if groups_node is None:
            reader.report(root.line, ("groups",), "Missing required key 'groups'.")
            return []
        if not isinstance(groups_node, Sequence):
            reader.expect(tuple[Any, ...], groups_node, ("groups",))
            return []

        groups: list[_NamedGroup] = []
        first_lines: dict[str, int] = {}
        for index, node in enumerate(groups_node.items):
            path: FieldPath = ("groups", index)
            valid_group = self._read_group(node, path)
            group = reader.salvage(valid_group, path)
            if group is INVALID or group.name is INVALID:
                continue
            if group.name in first_lines:
                reader.report(
                    reader.line_of(("groups", index, "name")),
                    ("groups", index, "name"),
                    f"Duplicate group name {group.name!r}; it is also used at line "
                    f"{first_lines[group.name]}. Give each group a unique name.",
                )
                continue
            first_lines[group.name] = group.location.line
            groups.append((index, group, valid_group is not INVALID))
        return groups

    def _read_group(self, node: Node, path: FieldPath) -> Any:
        location = Location(path=self.path, line=node.line)
        group = self.reader.read_dataclass(
            RuleGroup,
            node,
            path,
            fixed={"location": location},
            custom={"rules": self._read_rules},
        )
        interval = getattr(self.reader.salvage(group, path), "interval", None)
        if interval is not None and interval is not INVALID:
            if interval.total_seconds() <= 0:
                interval_path = (*path, "interval")
                self.reader.report(
                    self.reader.line_of(interval_path),
                    interval_path,
                    "The interval must be greater than zero; write a value such as 1m.",
                )
        return group

    def _read_rules(self, node: Node, path: FieldPath) -> Any:
        reader = self.reader
        if not isinstance(node, Sequence):
            reader.expect(tuple[Any, ...], node, path, "Write one '- ' per rule.")
            return INVALID

        rules: list[Any] = []
        partials: list[Any] = []
        first_lines: dict[str, int] = {}
        for index, item in enumerate(node.items):
            item_path = (*path, index)
            valid_rule = self._read_rule(item, item_path)
            rules.append(valid_rule)
            rule = reader.salvage(valid_rule, item_path)
            partials.append(rule)
            if rule is INVALID or rule.alert is INVALID:
                continue
            if rule.alert in first_lines:
                reader.report(
                    reader.line_of((*item_path, "alert")),
                    (*item_path, "alert"),
                    f"Duplicate alert name {rule.alert!r} in this group; it is also "
                    f"used at line {first_lines[rule.alert]}. Give each rule of a "
                    "group a unique alert name.",
                )
                rules[-1] = INVALID
                continue
            first_lines[rule.alert] = rule.location.line

        if any(rule is INVALID for rule in rules):
            return reader.reject(path, tuple(partials))
        return tuple(rules)

    def _read_rule(self, node: Node, path: FieldPath) -> Any:
        reader = self.reader
        if not isinstance(node, Mapping):
            reader.report(
                node.line,
                path,
                f"Expected a mapping for the rule, got {_describe(node)}.",
            )
            return INVALID

        kinds = [
            name
            for name, (_, markers) in _RULE_KINDS.items()
            if markers.intersection(node.keys())
        ]
        if len(kinds) != 1:
            reader.report(node.line, path, _kind_message(kinds))
            return self._read_shared_fields(node, path)

        cls, _ = _RULE_KINDS[kinds[0]]
        others = {key for name, (_, keys) in _RULE_KINDS.items() for key in keys}
        fixed: dict[str, object] = {
            "location": Location(path=self.path, line=node.line)
        }
        fixed.update(dict.fromkeys(_PARSED_FIELDS.get(cls, {})))
        valid_rule = reader.read_dataclass(
            cls,
            node,
            path,
            fixed=fixed,
            custom={"detector": self._read_detector},
            also_allowed=others,
        )
        # The checks also run on a partial rule, whose fields that failed to
        # read are INVALID, so that its other problems are reported too.
        rule = reader.salvage(valid_rule, path)
        if rule is INVALID:
            return INVALID

        self._check_labels(rule, path)
        self._check_annotations(rule, path)
        checked: Any
        if isinstance(rule, ThresholdRule | DependencyRule):
            checked = self._parse_expressions(rule, node, path, valid_rule)
        elif isinstance(rule, AnomalyRule):
            checked = self._check_anomaly(rule, path)
        else:
            checked = self._check_forecast(rule, path)
        if valid_rule is INVALID or checked is INVALID:
            return reader.reject(path, rule)
        return checked

    def _read_shared_fields(self, node: Mapping, path: FieldPath) -> Any:
        """Check the fields of ``RuleBase`` in a rule of no single kind.

        The keys of every kind are set aside, so the alert name, lifecycle
        settings and labels are still checked. The result is ``INVALID``.
        """
        reader = self.reader
        shared = {yaml_name(item.name) for item in dataclasses.fields(RuleBase)}
        kind_keys = {
            yaml_name(item.name)
            for cls, _ in _RULE_KINDS.values()
            for item in dataclasses.fields(cls)
        }
        parsed_fields = {name for names in _PARSED_FIELDS.values() for name in names}
        kind_keys -= shared | parsed_fields
        entries = tuple(
            entry for entry in node.entries if entry[0].value not in kind_keys
        )
        rest = Mapping(entries=entries, line=node.line, column=node.column)
        location = Location(path=self.path, line=node.line)
        rule = reader.read_dataclass(
            RuleBase,
            rest,
            path,
            fixed={"location": location},
            also_allowed=kind_keys,
        )
        partial = reader.salvage(rule, path)
        if partial is not INVALID:
            self._check_labels(partial, path)
        # NOTE: annotations are not checked here, because the variables that
        # a template may use depend on the rule kind.
        return reader.reject(path, partial)

    def _check_labels(self, rule: RuleBase, path: FieldPath) -> None:
        if rule.labels is INVALID:
            return
        for name in rule.labels:
            if not _LABEL_NAME.fullmatch(name):
                label_path = (*path, "labels", name)
                self.reader.report(
                    self.reader.line_of(label_path),
                    label_path,
                    f"Invalid label name {name!r}; use letters, digits and "
                    "underscores, not starting with a digit.",
                )

    def _check_annotations(self, rule: Rule, path: FieldPath) -> None:
        if rule.annotations is INVALID:
            return
        annotations = {
            name: text for name, text in rule.annotations.items() if text is not INVALID
        }
        kind = templates.rule_kind(rule)
        problems = templates.check_annotations(annotations, kind)
        for name, message in problems.items():
            annotation_path = (*path, "annotations", name)
            line = self.reader.line_of(annotation_path)
            self.reader.report(line, annotation_path, message)

    def _check_forecast(self, rule: ForecastRule, path: FieldPath) -> Any:
        reader = self.reader
        valid = True
        if rule.attainment_below is INVALID:
            valid = False
        elif not 0 < rule.attainment_below < 1:
            valid = False
            field_path = (*path, "attainment_below")
            reader.report(
                reader.line_of(field_path),
                field_path,
                f"attainment_below is {rule.attainment_below:g}; write a "
                "probability between 0 and 1, exclusive, such as 0.7.",
            )
        elif rule.clear_margin is INVALID:
            valid = False
        elif rule.clear_margin < 0 or rule.attainment_below + rule.clear_margin >= 1:
            valid = False
            field_path = (*path, "clear_margin")
            reader.report(
                reader.line_of(field_path),
                field_path,
                f"clear_margin is {rule.clear_margin:g}; write a value from 0 up "
                f"to, but not including, {1 - rule.attainment_below:g}, so that "
                "the alert can clear.",
            )

        if rule.key_results is INVALID:
            return INVALID
        if not rule.key_results:
            valid = False
            field_path = (*path, "key_results")
            reader.report(
                reader.line_of(field_path),
                field_path,
                "The list of key results is empty; name at least one key result.",
            )
        for index, name in enumerate(rule.key_results):
            if name is INVALID:
                valid = False
                continue
            if self.key_results is None or name in self.key_results:
                continue
            valid = False
            field_path = (*path, "key_results", index)
            reader.report(
                reader.line_of(field_path),
                field_path,
                f"Unknown key result {name!r}."
                f"{describe_known(name, self.key_results, 'key result')}",
            )
        return rule if valid else INVALID

    def _parse_expressions(
        self,
        rule: ThresholdRule | DependencyRule,
        node: Mapping,
        path: FieldPath,
        valid_rule: Any,
    ) -> Any:
        """Parse the rule's expressions; return the rule with their trees.

        ``valid_rule`` is the rule as read, or ``INVALID`` when ``rule`` is
        its partial value. The expressions are checked in both cases, but the
        result is ``INVALID`` in the second.
        """
        parsed: dict[str, Any] = {}
        for tree_field, text_field in _PARSED_FIELDS[type(rule)].items():
            text = getattr(rule, text_field)
            if text is INVALID:
                parsed[tree_field] = INVALID
                continue
            parsed[tree_field] = self._parse_expression(text, node, (*path, text_field))
        valid = valid_rule is not INVALID
        if isinstance(rule, DependencyRule) and not self._check_dependency(rule, path):
            valid = False
        if not valid or any(tree is INVALID for tree in parsed.values()):
            return INVALID
        return dataclasses.replace(rule, **parsed)

    def _parse_expression(self, text: str, node: Mapping, expr_path: FieldPath) -> Any:
        """Parse one expression field; return its tree, or ``INVALID``."""
        expr_node = node.get(str(expr_path[-1]))
        assert isinstance(expr_node, Scalar)  # The field was read as a string.
        if not text.strip():
            self.reader.report(
                expr_node.line,
                expr_path,
                "The expression is empty; write a condition such as "
                'kpi("orders") < 100.',
            )
            return INVALID

        try:
            from rules import expr as expressions
        except ImportError:
            # NOTE: without rules.expr the expression is not checked, and the
            # rule carries no parsed tree.
            logger.warning("rules.expr is not available; expressions are not parsed")
            return None

        try:
            tree = expressions.parse(text)
        except expressions.ExpressionError as error:
            problem = _expression_problem(self.reader, expr_node, expr_path, error)
            self.reader.problems.append(problem)
            return INVALID

        errors = expressions.reference_errors(tree, self.kpis, self.key_results)
        for reference_error in errors:
            problem = _expression_problem(
                self.reader, expr_node, expr_path, reference_error
            )
            self.reader.problems.append(problem)
        if errors:
            return INVALID
        return tree

    def _check_dependency(self, rule: DependencyRule, path: FieldPath) -> bool:
        reader = self.reader
        valid = True
        if INVALID in (rule.match_on, rule.match_ignoring):
            valid = False
        elif rule.match_on is not None and rule.match_ignoring:
            valid = False
            ignoring_path = (*path, "match_ignoring")
            reader.report(
                reader.line_of(ignoring_path),
                ignoring_path,
                "match_on and match_ignoring exclude each other; keep one of them.",
            )
        for key in ("match_on", "match_ignoring"):
            names = getattr(rule, key)
            if names is INVALID:
                continue
            for index, name in enumerate(names or ()):
                if name is INVALID:
                    valid = False
                elif not _LABEL_NAME.fullmatch(name):
                    valid = False
                    self._report_label_name((*path, key, index), name)
        return valid

    def _read_detector(self, node: Node, path: FieldPath) -> Any:
        reader = self.reader
        if not isinstance(node, Mapping):
            reader.expect(
                AbcMapping[str, Any],
                node,
                path,
                "Write it as {type: robust_z, threshold: 4}.",
            )
            return INVALID

        from detectors.anomaly import DETECTOR_TYPES, make_detector

        data = reader.read(Any, node, path)
        if data is INVALID:
            return INVALID
        type_name = data.pop("type", None)
        type_path = (*path, "type")
        choices = sorted(DETECTOR_TYPES)
        if type_name is None:
            reader.report(
                node.line,
                type_path,
                "Missing required key 'type'; name one of the detectors "
                f"{join_choices(choices)}.",
            )
            return INVALID
        if not isinstance(type_name, str) or type_name not in DETECTOR_TYPES:
            reader.report(
                reader.line_of(type_path),
                type_path,
                f"Unknown detector type {type_name!r}."
                f"{suggest(str(type_name), choices)} The detector types are "
                f"{join_choices(choices)}.",
            )
            return INVALID

        try:
            make_detector(type_name, **data).fit([], [])
        except (TypeError, ValueError) as error:
            # An unknown parameter is a TypeError of __init__; a value out of
            # range is the detector's InvalidParameterError, a ValueError.
            parameter = getattr(error, "parameter", None)
            field_path = path
            if isinstance(parameter, str) and parameter in data:
                field_path = (*path, parameter)
            message = str(error)
            if isinstance(error, TypeError):
                message = _unknown_parameter_message(type_name, data, error)
            reader.report(reader.line_of(field_path), field_path, message)
            return INVALID
        return DetectorSpec(type=type_name, params=data)

    def _check_anomaly(self, rule: AnomalyRule, path: FieldPath) -> Any:
        reader = self.reader
        valid = True
        if rule.kpi is INVALID:
            valid = False
        elif self.kpis is not None and rule.kpi not in self.kpis:
            valid = False
            kpi_path = (*path, "kpi")
            reader.report(
                reader.line_of(kpi_path),
                kpi_path,
                f"Unknown KPI {rule.kpi!r}."
                f"{describe_known(rule.kpi, self.kpis, 'KPI')}",
            )
        for key in ("match", "match_re"):
            labels = getattr(rule, key)
            if labels is INVALID:
                valid = False
                continue
            for name, value in labels.items():
                if not _LABEL_NAME.fullmatch(name):
                    valid = False
                    self._report_label_name((*path, key, name), name)
                elif value is INVALID:
                    valid = False
                elif key == "match_re":
                    valid = self._check_pattern((*path, key, name), value) and valid
        return rule if valid else INVALID

    def _check_pattern(self, field_path: FieldPath, pattern: str) -> bool:
        try:
            re.compile(pattern)
        except re.error as error:
            self.reader.report(
                self.reader.line_of(field_path),
                field_path,
                f"Invalid regular expression {pattern!r}: {error}. Write a Python "
                "regular expression; it must match the whole label value.",
            )
            return False
        return True

    def _report_label_name(self, field_path: FieldPath, name: str) -> None:
        self.reader.report(
            self.reader.line_of(field_path),
            field_path,
            f"Invalid label name {name!r}; use letters, digits and "
            "underscores, not starting with a digit.",
        )


def _unknown_parameter_message(
    type_name: str, params: dict[str, Any], error: TypeError
) -> str:
    from detectors.anomaly import DETECTOR_TYPES

    allowed = sorted(DETECTOR_TYPES[type_name]().get_params())
    unknown = [name for name in params if name not in allowed]
    if not unknown:
        return f"The {type_name} detector rejected its parameters: {error}."
    name = unknown[0]
    return (
        f"Unknown parameter {name!r} of the {type_name} detector."
        f"{suggest(name, allowed)} The parameters are {join_choices(allowed)}."
    )


def _kind_message(kinds: list[str]) -> str:
    described = [
        f"{name} ({' and '.join(sorted(markers))})"
        for name, (_, markers) in _RULE_KINDS.items()
    ]
    if kinds:
        return (
            f"The rule mixes the keys of {' and '.join(kinds)} rules; keep the keys "
            f"of one kind: {'; '.join(described)}."
        )
    return (
        f"The rule matches no kind; write the keys of one kind: {'; '.join(described)}."
    )


def _describe(node: Node) -> str:
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    return repr(node.value)


def _expression_problem(
    reader: Reader, node: Scalar, path: FieldPath, error: Any
) -> Problem:
    """Place an expression error at its file line and column, with a caret."""
    text = node.value
    offset = min(max(int(error.offset), 0), len(text))
    position = _locate_offset(reader.document.lines, node, offset)
    if position is not None:
        line, column = position
        source_line = reader.document.lines[line - 1]
    else:
        # The text cannot be mapped onto the file exactly; show the expression.
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        source_line = text[line_start : line_end if line_end != -1 else len(text)]
        line = node.line
        column = offset - line_start + 1
    padding = "".join(
        "\t" if char == "\t" else " " for char in source_line[: column - 1]
    )
    message = f"{error.message}\n    {source_line}\n    {padding}^"
    return Problem(
        file=reader.document.file,
        line=line,
        column=column,
        field_path=format_field_path(path),
        message=message,
    )


def _locate_offset(
    lines: list[str], node: Scalar, offset: int
) -> tuple[int, int] | None:
    """Return the 1-based file line and column of ``offset`` in a scalar's text.

    Single-line scalars, literal blocks (``|``), and folded blocks (``>``) or
    multi-line plain scalars without blank lines are mapped. The result is
    checked against the file, and ``None`` means no exact match, as for
    escape sequences in double quotes.
    """
    text = node.value
    if not 0 < node.line <= len(lines):
        return None

    position: tuple[int, int] | None
    if "\n" not in text.rstrip("\n") and node.line == node.end_line:
        quote = 1 if node.style in ("'", '"') else 0
        position = (node.line, node.column + quote + offset)
        if offset >= len(text):
            return position  # An error at the end points just past the text.
    elif offset >= len(text):
        return None
    elif node.style == "|":
        position = _locate_in_literal(lines, node, offset)
    else:
        position = _locate_in_folded(lines, node, offset)

    if position is None:
        return None
    line, column = position
    if not 0 < line <= len(lines) or column < 1:
        return None
    if lines[line - 1][column - 1 : column] != text[offset]:
        return None
    return position


def _block_indent(lines: list[str], first_line: int) -> int | None:
    for source in lines[first_line - 1 :]:
        if source.strip():
            return len(source) - len(source.lstrip(" "))
    return None


def _locate_in_literal(
    lines: list[str], node: Scalar, offset: int
) -> tuple[int, int] | None:
    # Literal content starts on the line after the indicator, one text line
    # per file line, with the block's indentation removed.
    indent = _block_indent(lines, node.line + 1)
    if indent is None:
        return None
    text = node.value
    index = text.count("\n", 0, offset)
    within = offset - (text.rfind("\n", 0, offset) + 1)
    return node.line + 1 + index, indent + within + 1


def _locate_in_folded(
    lines: list[str], node: Scalar, offset: int
) -> tuple[int, int] | None:
    # Folding joins the file lines with one space each, which holds for
    # text without blank or more-indented lines; the caller checks the result.
    if node.style == ">":
        line = node.line + 1
        indent = _block_indent(lines, line)
        if indent is None:
            return None
        start = indent + 1
    else:
        quote = 1 if node.style in ("'", '"') else 0
        line, start = node.line, node.column + quote

    position = 0
    while line <= min(node.end_line, len(lines)):
        source = lines[line - 1]
        segment = source[start - 1 :].rstrip()
        if position <= offset < position + len(segment):
            return line, start + offset - position
        position += len(segment) + 1
        line += 1
        following = lines[line - 1] if line <= len(lines) else ""
        start = len(following) - len(following.lstrip(" ")) + 1
    return None
