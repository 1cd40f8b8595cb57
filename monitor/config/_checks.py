"""Cross-reference and range checks that span several parts of a config.

The checks also run on partial values, so each one skips a field that is
``INVALID`` because reading it failed and its problem was reported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from monitor.config._schema import INVALID, FieldPath, Reader, describe_known
from monitor.config.model import KeyResultConfig, RouteConfig, ServerConfig
from rules.graph import find_cycles

if TYPE_CHECKING:
    from monitor.config._loader import Parsed


def check_config(reader: Reader, parsed: Parsed) -> None:
    """Report problems that no single field shows, on the parts that were read."""
    _check_server(reader, parsed.server)
    _check_durations(reader, parsed)
    # Names and references are checked on every name written, so that an
    # item with its own problems does not also show up as missing.
    roles = {
        "sources": "source",
        "kpis": "KPI",
        "objectives": "objective",
        "key_results": "key result",
        "receivers": "receiver",
    }
    for section, role in roles.items():
        _check_unique(reader, role, parsed.names.get(section, []))

    source_names = _names(parsed, "sources")
    for index, kpi in parsed.kpis:
        path: FieldPath = ("kpis", index, "source")
        _check_reference(reader, path, kpi.source, "source", source_names)

    kpi_names = _names(parsed, "kpis")
    _check_drives(reader, parsed, kpi_names)
    for path, key_result in parsed.key_results:
        _check_reference(reader, (*path, "kpi"), key_result.kpi, "KPI", kpi_names)
        _check_key_result(reader, path, key_result)

    if parsed.route is not None:
        receiver_names = _names(parsed, "receivers")
        _check_route(reader, ("route",), parsed.route, receiver_names)


def _names(parsed: Parsed, section: str) -> frozenset[str]:
    return frozenset(name for _, name in parsed.names.get(section, []))


def _check_server(reader: Reader, server: ServerConfig) -> None:
    listen = server.listen
    if listen is not INVALID and not _is_host_port(listen):
        path: FieldPath = ("server", "listen")
        reader.report(
            reader.line_of(path),
            path,
            f"Invalid listen address {listen!r}; write host:port, such as "
            "127.0.0.1:9464 or [::1]:9464.",
        )

    url = server.external_url
    if url is None or url is INVALID:
        return
    if not url.startswith(("http://", "https://")):
        path = ("server", "external_url")
        reader.report(
            reader.line_of(path),
            path,
            f"Invalid URL {url!r}; write an http:// or https:// URL.",
        )


def _is_host_port(listen: str) -> bool:
    host, separator, port = listen.rpartition(":")
    return bool(separator and host and port.isdigit() and int(port) <= 65535)


def _check_durations(reader: Reader, parsed: Parsed) -> None:
    positive: list[tuple[FieldPath, timedelta | None]] = [
        (("storage", "retention"), parsed.storage.retention),
        (("storage", "window"), parsed.storage.window),
        (("evaluation", "interval"), parsed.evaluation.interval),
    ]
    for index, source in parsed.sources:
        positive.append((("sources", index, "interval"), source.interval))
        positive.append((("sources", index, "timeout"), source.timeout))
    for index, kpi in parsed.kpis:
        positive.append((("kpis", index, "stale_after"), kpi.stale_after))

    for path, value in positive:
        if value is None or value is INVALID:
            continue
        if value <= timedelta(0):
            reader.report(
                reader.line_of(path),
                path,
                "The duration must be greater than zero; write a value such as 30s.",
            )
    _check_retention_covers_window(reader, parsed)


def _days(value: timedelta) -> str:
    return f"{value.total_seconds() / 86400:g}d"


def _check_retention_covers_window(reader: Reader, parsed: Parsed) -> None:
    """Report a retention shorter than the in-memory window it must reload."""
    retention, window = parsed.storage.retention, parsed.storage.window
    if retention is INVALID or window is INVALID:
        return
    if timedelta(0) < retention < window:
        path = ("storage", "retention")
        reader.report(
            reader.line_of(path),
            path,
            f"The retention of {_days(retention)} is shorter than "
            f"storage.window ({_days(window)}), so a restart would "
            "reload less history than the rules and forecasts use; raise "
            "retention to at least the window.",
        )


def _check_unique(
    reader: Reader, role: str, named: Iterable[tuple[FieldPath, str]]
) -> None:
    first_lines: dict[str, int] = {}
    for path, name in named:
        name_path = (*path, "name")
        line = reader.line_of(name_path)
        if name not in first_lines:
            first_lines[name] = line
            continue

        reader.report(
            line,
            name_path,
            f"Duplicate {role} name {name!r}; it is also used at line "
            f"{first_lines[name]}. Give each {role} a unique name.",
        )


def _check_reference(
    reader: Reader, path: FieldPath, name: str, role: str, known: Collection[str]
) -> None:
    if name is INVALID or name in known:
        return

    detail = describe_known(name, known, role)
    reader.report(reader.line_of(path), path, f"Unknown {role} {name!r}.{detail}")


def _check_drives(reader: Reader, parsed: Parsed, kpi_names: Collection[str]) -> None:
    """Check ``drives`` edges: known targets, no self-edge, no repeat, no cycle."""
    edges: dict[str, list[str]] = {}
    edge_paths: dict[tuple[str, str], FieldPath] = {}
    for index, kpi in parsed.kpis:
        if kpi.name is INVALID or kpi.drives is INVALID:
            continue
        for position, edge in enumerate(kpi.drives):
            if edge is INVALID or edge.kpi is INVALID:
                continue
            path: FieldPath = ("kpis", index, "drives", position, "kpi")
            if edge.kpi == kpi.name:
                reader.report(
                    reader.line_of(path),
                    path,
                    f"KPI {kpi.name!r} drives itself; name another KPI or remove "
                    "the edge.",
                )
                continue
            if (kpi.name, edge.kpi) in edge_paths:
                first = reader.line_of(edge_paths[(kpi.name, edge.kpi)])
                reader.report(
                    reader.line_of(path),
                    path,
                    f"KPI {kpi.name!r} already drives {edge.kpi!r} at line {first}; "
                    "keep one edge per pair of KPIs.",
                )
                continue
            _check_reference(reader, path, edge.kpi, "KPI", kpi_names)
            edges.setdefault(kpi.name, []).append(edge.kpi)
            edge_paths[(kpi.name, edge.kpi)] = path

    for cycle in find_cycles(edges):
        closing = (cycle[-1], cycle[0])
        path = edge_paths[closing]
        loop = " -> ".join([*cycle, cycle[0]])
        reader.report(
            reader.line_of(path),
            path,
            f"The drives edges form a cycle: {loop}. Remove one of these edges, "
            "because the KPI graph must have no cycle.",
        )


def _check_key_result(
    reader: Reader, path: FieldPath, key_result: KeyResultConfig
) -> None:
    _check_key_result_period(reader, path, key_result)

    target_path = (*path, "target")
    target, baseline = key_result.target, key_result.baseline
    if target is INVALID or baseline is INVALID:
        return
    if target == baseline:
        reader.report(
            reader.line_of(target_path),
            target_path,
            f"The target {target:g} equals the baseline; progress needs a target "
            "that differs from the baseline.",
        )
    elif key_result.direction == "increase" and target < baseline:
        reader.report(
            reader.line_of(target_path),
            target_path,
            f"The target {target:g} is below the baseline {baseline:g}, but the "
            "direction is increase; raise the target or write direction: decrease.",
        )
    elif key_result.direction == "decrease" and target > baseline:
        reader.report(
            reader.line_of(target_path),
            target_path,
            f"The target {target:g} is above the baseline {baseline:g}, but the "
            "direction is decrease; lower the target or write direction: increase.",
        )


def _check_key_result_period(
    reader: Reader, path: FieldPath, key_result: KeyResultConfig
) -> None:
    start, due = key_result.start, key_result.due
    if INVALID in (key_result.period, start, due):
        return
    if key_result.period is not None:
        if start is not None or due is not None:
            field = "start" if start is not None else "due"
            reader.report(
                reader.line_of((*path, field)),
                (*path, field),
                "Set either period, or start and due, not both; remove one of them.",
            )
        return

    if start is None or due is None:
        missing = "start" if start is None else "due"
        reader.report(
            reader.line_of(path),
            (*path, missing),
            f"Missing {missing}; set period (week, month or quarter), or both "
            "start and due.",
        )
        return

    if due <= start:
        reader.report(
            reader.line_of((*path, "due")),
            (*path, "due"),
            f"The due date {due.isoformat()} is not after the start "
            f"{start.isoformat()}; set a due date after the start.",
        )


def _check_route(
    reader: Reader, path: FieldPath, route: RouteConfig, receivers: Collection[str]
) -> None:
    _check_reference(reader, (*path, "receiver"), route.receiver, "receiver", receivers)
    match_re = {} if route.match_re is INVALID else route.match_re
    for label, pattern in match_re.items():
        if pattern is INVALID:
            continue
        try:
            re.compile(pattern)
        except re.error as error:
            item_path = (*path, "match_re", label)
            reader.report(
                reader.line_of(item_path),
                item_path,
                f"Invalid regular expression {pattern!r}: {error}; fix the pattern.",
            )

    children = () if route.routes is INVALID else route.routes
    for index, child in enumerate(children):
        if child is not INVALID:
            _check_route(reader, (*path, "routes", index), child, receivers)
