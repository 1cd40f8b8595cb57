"""The KPI dependency graph: ``drives`` edges, blast radius and root cause.

A KPI declares the KPIs it drives, such as ``drives: [{kpi: churn, lag: 7d}]``.
The graph answers three questions for the rule engine: which KPIs and key
results lie downstream of a KPI (the blast radius that notifications list),
which firing alerts sit on KPIs upstream of a rule (the root cause that
annotates, and may inhibit, a downstream alert), and how the graph looks
(Mermaid or Graphviz dot text for ``krwatch graph``).

This module imports nothing from ``monitor.config`` at run time, so the
config checks can use ``find_cycles`` without an import cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from monitor.durations import format_duration
from rules.expr import Selector
from rules.expr._tree import walk

if TYPE_CHECKING:
    from exporters.notification import Notification
    from monitor.config.model import Config
    from rules.lifecycle import AlertState

logger = logging.getLogger(__name__)

ROOT_CAUSE_ANNOTATION = "root_cause"
"""Annotation that names the firing upstream alerts of a downstream alert."""

ALERT_KPIS_KEY = "kpis"
"""Key of ``AlertState.extra`` that lists the KPIs an alert's rule reads."""

INHIBITED_BY_KEY = "inhibited_by"
"""Key of ``AlertState.extra`` that lists the alerts holding back its firing
notification."""


@dataclass(frozen=True, kw_only=True)
class Edge:
    """One edge of the graph: ``upstream`` drives ``downstream`` after ``lag``."""

    upstream: str
    downstream: str
    lag: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class Downstream:
    """A KPI reachable from another one, with the shortest total lag."""

    kpi: str
    lag: timedelta
    path: tuple[str, ...]
    """KPIs from the start to this one, both included."""


@dataclass(frozen=True, kw_only=True)
class UpstreamAlert:
    """A firing alert on a KPI that is upstream of a rule's KPIs."""

    alert: str
    fingerprint: str
    labels: Mapping[str, str]
    kpi: str
    downstream: str
    """The KPI of the rule that this alert's KPI drives, directly or not."""

    def describe(self) -> str:
        """Return one sentence that names the alert and the edge it acts on."""
        labels = ", ".join(
            f"{name}={value}"
            for name, value in sorted(self.labels.items())
            if name != "alertname"
        )
        shown = f"{self.alert}{{{labels}}}" if labels else self.alert
        return f"{shown} fires on KPI {self.kpi!r}, upstream of {self.downstream!r}."


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Find the cycles of a directed graph, one per strongly connected part.

    Parameters
    ----------
    edges : mapping of str to iterable of str
        Each node's direct successors. Self-edges count as cycles.

    Returns
    -------
    list of list of str
        Each cycle as its nodes in edge order, starting at its smallest name,
        without repeating the first node at the end. Sorted by first node.
    """
    successors = {node: sorted(set(targets)) for node, targets in edges.items()}
    cycles = []
    for component in _strong_components(successors):
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in successors.get(start, []):
            continue
        cycles.append(_cycle_through(start, members, successors))
    return sorted(cycles)


def _strong_components(successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    # Tarjan's algorithm, iterative so that long chains need no deep recursion.
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    nodes = sorted(set(successors) | {t for ts in successors.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = lowlink[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = successors.get(node, [])
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    lowlink[node] = min(lowlink[node], index[target])
                continue

            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycle_through(
    start: str, members: set[str], successors: Mapping[str, Sequence[str]]
) -> list[str]:
    """Return a shortest cycle through ``start`` inside one strong component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in successors.get(node, []):
                if target not in members:
                    continue
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    return [start]


class KPIGraph:
    """The ``drives`` edges of a configuration, with their key results.

    Parameters
    ----------
    edges : iterable of Edge
    key_results : mapping of str to str, optional
        Key result name to the name of its KPI.
    kpis : mapping of str to mapping, optional
        KPI name to its ``help`` and ``unit``, for notification context.
    """

    def __init__(
        self,
        edges: Iterable[Edge],
        *,
        key_results: Mapping[str, str] | None = None,
        kpis: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.edges = tuple(edges)
        self.key_results = dict(key_results or {})
        self.kpis = {name: dict(fields) for name, fields in (kpis or {}).items()}
        self._successors: dict[str, list[Edge]] = {}
        self._predecessors: dict[str, list[str]] = {}
        for edge in self.edges:
            self._successors.setdefault(edge.upstream, []).append(edge)
            self._predecessors.setdefault(edge.downstream, []).append(edge.upstream)

    @classmethod
    def from_config(cls, config: Config) -> KPIGraph:
        """Build the graph of a loaded configuration."""
        edges = [
            Edge(upstream=kpi.name, downstream=edge.kpi, lag=edge.lag)
            for kpi in config.kpis
            for edge in kpi.drives
        ]
        return cls(
            edges,
            key_results={kr.name: kr.kpi for kr in config.key_results},
            kpis={
                kpi.name: {"help": kpi.help, "unit": kpi.unit} for kpi in config.kpis
            },
        )

    def nodes(self) -> list[str]:
        """Return every KPI of the graph, sorted, including ones without edges."""
        names = set(self.kpis) | set(self.key_results.values())
        for edge in self.edges:
            names.update((edge.upstream, edge.downstream))
        return sorted(names)

    def downstream(self, kpi: str) -> list[Downstream]:
        """Return the KPIs that ``kpi`` drives, directly or through others.

        Each KPI appears once, with the path of the shortest total lag (fewest
        edges on a tie). The result is sorted by lag, then by name; ``kpi``
        itself is not included, even on a cycle.
        """
        best: dict[str, Downstream] = {}
        frontier = [Downstream(kpi=kpi, lag=timedelta(0), path=(kpi,))]
        while frontier:
            reached = frontier.pop()
            for edge in self._successors.get(reached.kpi, []):
                if edge.downstream == kpi:
                    continue
                candidate = Downstream(
                    kpi=edge.downstream,
                    lag=reached.lag + edge.lag,
                    path=(*reached.path, edge.downstream),
                )
                known = best.get(edge.downstream)
                if known is None or _shorter(candidate, known):
                    best[edge.downstream] = candidate
                    frontier.append(candidate)
        return sorted(best.values(), key=lambda item: (item.lag, item.kpi))

    def upstream(self, kpi: str) -> set[str]:
        """Return the KPIs that drive ``kpi``, directly or through others."""
        seen: set[str] = set()
        frontier = [kpi]
        while frontier:
            for parent in self._predecessors.get(frontier.pop(), []):
                if parent not in seen:
                    seen.add(parent)
                    frontier.append(parent)
        seen.discard(kpi)
        return seen

    def key_results_at_risk(self, kpi: str) -> list[str]:
        """Return the key results on ``kpi`` or on a KPI downstream of it."""
        affected = {kpi} | {item.kpi for item in self.downstream(kpi)}
        return sorted(name for name, on in self.key_results.items() if on in affected)

    def kpi_context(self, kpi: str, labels: Mapping[str, str]) -> dict[str, object]:
        """Build the ``Notification.kpi`` mapping: the KPI and its blast radius.

        Parameters
        ----------
        kpi : str
            The KPI the alert is about.
        labels : mapping of str to str
            The series labels of the alert.

        Returns
        -------
        dict
            ``name``, ``help``, ``unit``, ``labels``, ``downstream`` (a list
            of ``{kpi, lag_seconds, path, key_results}``) and
            ``key_results_at_risk`` (names, sorted).
        """
        fields = self.kpis.get(kpi, {})
        downstream = [
            {
                "kpi": item.kpi,
                "lag_seconds": item.lag.total_seconds(),
                "path": list(item.path),
                "key_results": sorted(
                    name for name, on in self.key_results.items() if on == item.kpi
                ),
            }
            for item in self.downstream(kpi)
        ]
        return {
            "name": kpi,
            "help": fields.get("help", ""),
            "unit": fields.get("unit", ""),
            "labels": dict(labels),
            "downstream": downstream,
            "key_results_at_risk": self.key_results_at_risk(kpi),
        }

    def firing_upstream(
        self,
        kpis: Iterable[str],
        alerts: Iterable[AlertState],
        kpis_of: Callable[[AlertState], Iterable[str]] | None = None,
    ) -> list[UpstreamAlert]:
        """Return the firing alerts on KPIs upstream of any of ``kpis``.

        An alert counts when one of its KPIs drives one of ``kpis`` and is not
        itself one of them. ``kpis_of`` returns an alert's KPIs; by default
        they are read from its ``extra``. The result is sorted by alert name
        and fingerprint.
        """
        kpis_of = kpis_of or _alert_kpis
        own = set(kpis)
        upstream_of = {kpi: self.upstream(kpi) - own for kpi in sorted(own)}
        found: dict[str, UpstreamAlert] = {}
        for state in alerts:
            if state.state != "firing":
                continue
            for alert_kpi in kpis_of(state):
                target = next(
                    (
                        kpi
                        for kpi, parents in upstream_of.items()
                        if alert_kpi in parents
                    ),
                    None,
                )
                if target is not None and state.fingerprint not in found:
                    found[state.fingerprint] = UpstreamAlert(
                        alert=state.alert,
                        fingerprint=state.fingerprint,
                        labels=dict(state.labels),
                        kpi=alert_kpi,
                        downstream=target,
                    )
        return sorted(found.values(), key=lambda item: (item.alert, item.fingerprint))

    def to_mermaid(self) -> str:
        """Return the graph as a Mermaid flowchart, key results included."""
        lines = ["flowchart LR"]
        identifiers = {name: f"kpi_{index}" for index, name in enumerate(self.nodes())}
        for name, identifier in identifiers.items():
            lines.append(f'    {identifier}["{_mermaid_text(name)}"]')
        for edge in sorted(self.edges, key=lambda e: (e.upstream, e.downstream)):
            arrow = f"-- {_format_lag(edge.lag)} -->" if edge.lag else "-->"
            lines.append(
                f"    {identifiers[edge.upstream]} {arrow} "
                f"{identifiers[edge.downstream]}"
            )
        for index, (name, kpi) in enumerate(sorted(self.key_results.items())):
            identifier = f"kr_{index}"
            lines.append(f'    {identifier}(["{_mermaid_text(name)}"])')
            lines.append(f"    {identifiers[kpi]} -.-> {identifier}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """Return the graph in Graphviz dot syntax, key results included."""
        lines = ["digraph kpis {", "    rankdir=LR;", "    node [shape=box];"]
        for name in self.nodes():
            lines.append(f"    {_dot_id(name)};")
        for edge in sorted(self.edges, key=lambda e: (e.upstream, e.downstream)):
            label = f' [label="{_format_lag(edge.lag)}"]' if edge.lag else ""
            lines.append(
                f"    {_dot_id(edge.upstream)} -> {_dot_id(edge.downstream)}{label};"
            )
        for name, kpi in sorted(self.key_results.items()):
            node = _dot_id(f"kr:{name}")
            lines.append(f'    {node} [shape=ellipse, label="{_dot_text(name)}"];')
            lines.append(f"    {_dot_id(kpi)} -> {node} [style=dashed];")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _shorter(candidate: Downstream, known: Downstream) -> bool:
    return (candidate.lag, len(candidate.path)) < (known.lag, len(known.path))


def _alert_kpis(state: AlertState) -> list[str]:
    kpis: Any = state.extra.get(ALERT_KPIS_KEY, [])
    if not isinstance(kpis, list | tuple):
        return []
    return [str(kpi) for kpi in kpis]


def _format_lag(lag: timedelta) -> str:
    return format_duration(lag)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_id(text: str) -> str:
    return f'"{_dot_text(text)}"'


_GRAPHS: dict[int, tuple[Config, KPIGraph]] = {}
"""The graph of the last configuration seen, by ``id``; see ``graph_of``."""


def graph_of(config: Config) -> KPIGraph:
    """Return the graph of ``config``, built once per configuration object.

    The evaluator's configuration is swapped on reload, so the cache holds
    only the newest one; keeping the object itself makes its ``id`` safe.
    """
    cached = _GRAPHS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]

    graph = KPIGraph.from_config(config)
    _GRAPHS.clear()
    _GRAPHS[id(config)] = (config, graph)
    return graph


def rule_kpis(rule: object, graph: KPIGraph) -> list[str]:
    """Return the KPIs a rule reads, the one it is about first.

    A rule with a ``kpi`` field (an anomaly rule) is about that KPI. A
    threshold or dependency rule is about the KPIs its expressions select, in
    the order they are written (``when`` before ``require``). A forecast rule
    is about the KPIs of its key results.
    """
    kpi = getattr(rule, "kpi", None)
    if isinstance(kpi, str):
        return [kpi]

    expressions = [
        getattr(rule, name, None)
        for name in ("expression", "when_expression", "require_expression")
    ]
    if any(expression is not None for expression in expressions):
        selected: list[str] = []
        for expression in expressions:
            if expression is None:
                continue
            selectors = [
                node for node in walk(expression) if isinstance(node, Selector)
            ]
            selectors.sort(key=lambda node: node.offset)
            selected.extend(node.kpi for node in selectors)
        return list(dict.fromkeys(selected))

    names = getattr(rule, "key_results", ())
    kpis = [graph.key_results[name] for name in names if name in graph.key_results]
    return list(dict.fromkeys(kpis))


def notification_kpi(
    graph: KPIGraph, rule: object, labels: Mapping[str, str]
) -> dict[str, object] | None:
    """Return ``Notification.kpi`` for a threshold or anomaly alert, else None.

    The labels are the alert's labels without ``alertname`` and without the
    labels the rule adds, which leaves the series labels.
    """
    if getattr(rule, "key_results", None) is not None:
        return None

    kpis = rule_kpis(rule, graph)
    if not kpis:
        return None

    added: Mapping[str, str] = getattr(rule, "labels", {})
    series_labels = {
        name: value
        for name, value in labels.items()
        if name != "alertname" and added.get(name) != value
    }
    return graph.kpi_context(kpis[0], series_labels)


def tag_alert(state: AlertState, rule: object, graph: KPIGraph) -> AlertState:
    """Return ``state`` with the KPIs of its rule in ``extra``, for root cause."""
    kpis = rule_kpis(rule, graph)
    if _alert_kpis(state) == kpis and ALERT_KPIS_KEY in state.extra:
        return state

    return replace(state, extra={**state.extra, ALERT_KPIS_KEY: kpis})


def cause_annotations(causes: Sequence[UpstreamAlert]) -> dict[str, str]:
    """Return the ``root_cause`` annotation for firing upstream alerts, if any."""
    if not causes:
        return {}

    return {ROOT_CAUSE_ANNOTATION: " ".join(cause.describe() for cause in causes)}


def link_notification(
    notification: Notification,
    *,
    config: Config,
    rule: object | None,
    alerts: Iterable[AlertState],
    rules: Mapping[tuple[str, str], object],
) -> Notification:
    """Add the blast radius and the root cause of the KPI graph to a notification.

    For threshold, dependency and anomaly alerts, ``kpi`` gains the KPI's
    help, unit, downstream KPIs and key results at risk; fields already set,
    such as an anomaly rule's detector score, are kept. A firing
    notification whose rule's KPIs are driven by a KPI with a firing alert
    gets the ``root_cause`` annotation, and is marked ``inhibited`` when the
    rule sets ``inhibit_when_upstream_firing``.

    Parameters
    ----------
    notification : Notification
        As the rule engine built it.
    config : Config
        The configuration whose ``drives`` edges make the graph.
    rule : rule or None
        The rule of the alert; None leaves the notification unchanged.
    alerts : iterable of AlertState
        Every current alert, of every group.
    rules : mapping
        (group, alert name) to rule, to find the KPIs of other alerts.
    """
    if rule is None:
        return notification

    graph = graph_of(config)
    changes: dict[str, Any] = {}
    context = notification_kpi(graph, rule, notification.labels)
    if context is not None:
        changes["kpi"] = {**context, **(notification.kpi or {})}

    if notification.state == "firing":
        causes = upstream_causes(graph, rule, alerts, rules)
        if causes:
            annotations = dict(notification.annotations)
            annotations.update(cause_annotations(causes))
            changes["annotations"] = annotations
            changes["inhibited"] = bool(
                getattr(rule, "inhibit_when_upstream_firing", False)
            )
    return replace(notification, **changes) if changes else notification


def upstream_causes(
    graph: KPIGraph,
    rule: object,
    alerts: Iterable[AlertState],
    rules: Mapping[tuple[str, str], object],
) -> list[UpstreamAlert]:
    """Return the firing alerts on KPIs upstream of the KPIs ``rule`` reads."""

    def kpis_of(state: AlertState) -> list[str]:
        other = rules.get((state.group, state.alert))
        return rule_kpis(other, graph) if other is not None else _alert_kpis(state)

    return graph.firing_upstream(rule_kpis(rule, graph), alerts, kpis_of)


def inhibited_to_release(
    *,
    config: Config,
    alerts: Iterable[AlertState],
    rules: Mapping[tuple[str, str], object],
) -> list[str]:
    """Return the fingerprints of inhibited firing alerts whose causes resolved.

    An alert counts as inhibited while its ``extra`` has ``inhibited_by``;
    the caller releases its held-back notification and clears the key.
    """
    graph = graph_of(config)
    current = list(alerts)
    released = []
    for state in current:
        if state.state != "firing" or not state.extra.get(INHIBITED_BY_KEY):
            continue
        rule = rules.get((state.group, state.alert))
        if rule is None or not upstream_causes(graph, rule, current, rules):
            released.append(state.fingerprint)
    return released
