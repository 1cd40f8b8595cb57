"""The alert state machine shared by every rule kind.

States and timing follow Prometheus. A true condition makes an alert
``pending`` and, after ``for``, ``firing``. A false condition drops a pending
alert and resolves a firing one after ``keep_firing_for``. Missing data and
evaluation errors are explicit outcomes handled by the rule's policy, so they
never resolve an alert unless the policy says so.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

INACTIVE = "inactive"
PENDING = "pending"
FIRING = "firing"


class Outcome(enum.Enum):
    """The result of one evaluation for one alert."""

    TRUE = "true"
    FALSE = "false"
    NO_DATA = "no_data"
    ERROR = "error"


class Transition(enum.Enum):
    """A state change that sends a notification."""

    FIRED = "fired"
    RESOLVED = "resolved"


def _evolve(current: AlertState, /, **changes: object) -> AlertState:
    """Return a copy of ``state`` with ``changes``.

    ``dataclasses.replace`` runs ``__init__`` with every field, which costs
    about twenty times more; a cycle steps every active alert, so this is hot.
    """
    evolved = object.__new__(AlertState)
    fields = evolved.__dict__
    fields.update(current.__dict__)
    fields.update(changes)
    return evolved


def fingerprint(alert: str, labels: Mapping[str, str]) -> str:
    """Return the stable identity of an alert: a hash of its name and labels."""
    text = json.dumps([alert, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class AlertState:
    """One rule instance for one label set."""

    alert: str
    group: str
    labels: Mapping[str, str]
    state: str = INACTIVE
    active_at: float | None = None
    fired_at: float | None = None
    keep_firing_until: float | None = None
    last_value: float | None = None
    last_evaluated: float | None = None
    notified: bool = False
    """A firing notification was queued for the current firing episode."""
    consecutive_true: int = 0
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.alert, self.labels)


@dataclass(frozen=True, kw_only=True)
class Timing:
    """The lifecycle settings of one rule, in seconds."""

    for_seconds: float = 0.0
    keep_firing_for_seconds: float = 0.0
    no_data: str = "keep_state"
    on_error: str = "keep_state"
    confirmations: int = 1
    """Consecutive true evaluations needed before firing, besides ``for``."""


def step(
    state: AlertState,
    outcome: Outcome,
    now: float,
    timing: Timing,
    value: float | None = None,
) -> tuple[AlertState, Transition | None]:
    """Advance one alert by one evaluation.

    Returns
    -------
    (AlertState, Transition or None)
        The new state and the transition that needs a notification.
    """
    effective = _apply_policy(outcome, timing)
    if effective is None:
        return _evolve(state, last_evaluated=now), None

    if effective is Outcome.TRUE:
        return _step_true(state, now, timing, value)
    return _step_false(state, now, timing, value)


def _apply_policy(outcome: Outcome, timing: Timing) -> Outcome | None:
    """Map no-data and error outcomes to true, false or ``None`` (keep state)."""
    if outcome is Outcome.NO_DATA:
        return {"ok": Outcome.FALSE, "alerting": Outcome.TRUE}.get(timing.no_data)
    if outcome is Outcome.ERROR:
        return Outcome.TRUE if timing.on_error == "alerting" else None
    return outcome


def _step_true(
    state: AlertState, now: float, timing: Timing, value: float | None
) -> tuple[AlertState, Transition | None]:
    consecutive = state.consecutive_true + 1
    if state.state == FIRING:
        updated = _evolve(
            state,
            last_value=value,
            last_evaluated=now,
            keep_firing_until=None,
            consecutive_true=consecutive,
        )
        return updated, None

    active_at = now
    if state.state == PENDING and state.active_at is not None:
        active_at = state.active_at
    ready = (
        now - active_at >= timing.for_seconds and consecutive >= timing.confirmations
    )
    if not ready:
        pending = _evolve(
            state,
            state=PENDING,
            active_at=active_at,
            last_value=value,
            last_evaluated=now,
            consecutive_true=consecutive,
        )
        return pending, None

    firing = _evolve(
        state,
        state=FIRING,
        active_at=active_at,
        fired_at=now,
        last_value=value,
        last_evaluated=now,
        notified=True,
        consecutive_true=consecutive,
    )
    return firing, Transition.FIRED


def _step_false(
    state: AlertState, now: float, timing: Timing, value: float | None
) -> tuple[AlertState, Transition | None]:
    if state.state != FIRING:
        inactive = _evolve(
            state,
            state=INACTIVE,
            active_at=None,
            last_value=value,
            last_evaluated=now,
            consecutive_true=0,
        )
        return inactive, None

    deadline = state.keep_firing_until
    if deadline is None and timing.keep_firing_for_seconds > 0:
        deadline = now + timing.keep_firing_for_seconds
    if deadline is not None and now < deadline:
        kept = _evolve(
            state, keep_firing_until=deadline, last_evaluated=now, consecutive_true=0
        )
        return kept, None

    resolved = _evolve(
        state,
        state=INACTIVE,
        active_at=None,
        keep_firing_until=None,
        last_value=value,
        last_evaluated=now,
        notified=False,
        consecutive_true=0,
    )
    return resolved, Transition.RESOLVED if state.notified else None
