"""Notification routing: which receivers get an alert, and in which group.

The route tree follows Alertmanager: the root route matches every alert, its
child routes are tried in order, the first matching child wins unless it sets
``continue``, and an alert that matches no child goes to the parent. Each
matching leaf gives one ``RouteTarget`` with the receiver and the grouping
settings that the outbox uses to batch notifications.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from exporters._matchers import Matcher, matches_all
from exporters.errors import MatcherError, RouteError
from monitor.config.model import RouteConfig

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
_T = TypeVar("_T")

GROUP_BY_ALL = "..."
"""``group_by`` value that groups by every label."""


@dataclass(frozen=True, kw_only=True)
class RouteTarget:
    """Destination of one notification: a receiver and the group it joins."""

    receiver: str
    group_key: str
    """Route path and the values of the ``group_by`` labels, as text."""
    group_wait: timedelta = timedelta(0)
    group_interval: timedelta = timedelta(0)
    repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
    send_resolved: bool = True


@dataclass(frozen=True, kw_only=True)
class Route:
    """A node of the route tree with its inherited settings resolved."""

    path: str
    """Position in the tree, such as ``0`` for the root or ``0.2.1``."""
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_matching: bool
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    send_resolved: bool
    routes: tuple[Route, ...]

    @classmethod
    def from_config(
        cls, config: RouteConfig, parent: Route | None = None, path: str = "0"
    ) -> Route:
        """Build the tree from the parsed ``route:`` section.

        Raises
        ------
        RouteError
            If a ``match_re`` pattern is invalid or a duration is negative.
        """
        try:
            matchers = _config_matchers(config)
        except MatcherError as error:
            raise RouteError(
                f"Invalid route {path} ({config.receiver!r}): {error}"
            ) from error

        node = cls(
            path=path,
            receiver=config.receiver,
            matchers=matchers,
            continue_matching=config.continue_matching,
            group_by=_inherit(config.group_by, parent, "group_by", ()),
            group_wait=_inherit(
                config.group_wait, parent, "group_wait", DEFAULT_GROUP_WAIT
            ),
            group_interval=_inherit(
                config.group_interval, parent, "group_interval", DEFAULT_GROUP_INTERVAL
            ),
            repeat_interval=_inherit(
                config.repeat_interval,
                parent,
                "repeat_interval",
                DEFAULT_REPEAT_INTERVAL,
            ),
            send_resolved=_inherit(config.send_resolved, parent, "send_resolved", True),
            routes=(),
        )
        _check_durations(node)
        children = tuple(
            cls.from_config(child, node, f"{path}.{index}")
            for index, child in enumerate(config.routes)
        )
        object.__setattr__(node, "routes", children)
        return node

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def find(self, labels: Mapping[str, str]) -> list[Route]:
        """Return the routes whose receivers get an alert with ``labels``.

        Call it on the root; the root matches even without matchers.
        """
        found: list[Route] = []
        for child in self.routes:
            if not child.matches(labels):
                continue

            found.extend(child.find(labels))
            if not child.continue_matching:
                break

        return found or [self]

    def group_key(self, labels: Mapping[str, str]) -> str:
        if GROUP_BY_ALL in self.group_by:
            grouped = dict(sorted(labels.items()))
        else:
            grouped = {name: labels.get(name, "") for name in sorted(self.group_by)}
        return f"{self.path}:{json.dumps(grouped, sort_keys=True, ensure_ascii=False)}"

    def target(self, labels: Mapping[str, str]) -> RouteTarget:
        return RouteTarget(
            receiver=self.receiver,
            group_key=self.group_key(labels),
            group_wait=self.group_wait,
            group_interval=self.group_interval,
            repeat_interval=self.repeat_interval,
            send_resolved=self.send_resolved,
        )


class Router:
    """The route tree of one configuration.

    Parameters
    ----------
    config : RouteConfig or None
        The ``route:`` section. ``None`` routes nothing, so notifications
        are not sent.
    """

    def __init__(self, config: RouteConfig | None) -> None:
        self.root = None if config is None else Route.from_config(config)

    def route(self, labels: Mapping[str, str]) -> list[RouteTarget]:
        """Return one target per matching route, without repeating a
        receiver for the same group."""
        if self.root is None:
            return []

        targets: list[RouteTarget] = []
        seen: set[tuple[str, str]] = set()
        for route in self.root.find(labels):
            target = route.target(labels)
            if (target.receiver, target.group_key) in seen:
                continue

            seen.add((target.receiver, target.group_key))
            targets.append(target)
        return targets

    def receivers(self) -> set[str]:
        """Names of every receiver that some route uses."""
        names: set[str] = set()
        pending = [] if self.root is None else [self.root]
        while pending:
            route = pending.pop()
            names.add(route.receiver)
            pending.extend(route.routes)
        return names


def _config_matchers(config: RouteConfig) -> tuple[Matcher, ...]:
    equal = [
        Matcher(name=name, operator="=", value=value)
        for name, value in config.match.items()
    ]
    regex = [
        Matcher(name=name, operator="=~", value=value)
        for name, value in config.match_re.items()
    ]
    return tuple(equal + regex)


def _inherit(own: _T | None, parent: Route | None, name: str, default: _T) -> _T:
    if own is not None:
        return own

    if parent is not None:
        inherited: _T = getattr(parent, name)
        return inherited

    return default


def _check_durations(route: Route) -> None:
    for name in ("group_wait", "group_interval", "repeat_interval"):
        value: timedelta = getattr(route, name)
        if value < timedelta(0):
            raise RouteError(
                f"Invalid route {route.path} ({route.receiver!r}): {name} is "
                f"negative ({value}); use a duration of 0s or more."
            )
