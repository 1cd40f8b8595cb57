"""Alert lifecycle cases that mirror Prometheus' alerting rule semantics.

Each case steps one alert through outcomes one minute apart and lists the
state and notification after each step.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.lifecycle import (
    FIRING,
    INACTIVE,
    PENDING,
    AlertState,
    Outcome,
    Timing,
    Transition,
    step,
)

T, F, N, E = Outcome.TRUE, Outcome.FALSE, Outcome.NO_DATA, Outcome.ERROR
MINUTE = 60.0

Trace = list[tuple[str, str | None]]


def trace(outcomes: list[Outcome], timing: Timing) -> Trace:
    state = AlertState(alert="A", group="g", labels={"alertname": "A"})
    steps: Trace = []
    for index, outcome in enumerate(outcomes):
        state, transition = step(state, outcome, index * MINUTE, timing, 1.0)
        steps.append((state.state, transition.value if transition else None))
    return steps


CASES = [
    pytest.param(
        [T, T, T, T],
        Timing(for_seconds=3 * MINUTE),
        [(PENDING, None), (PENDING, None), (PENDING, None), (FIRING, "fired")],
        id="pending-fires-after-for",
    ),
    pytest.param(
        [T],
        Timing(),
        [(FIRING, "fired")],
        id="for-zero-fires-at-once",
    ),
    pytest.param(
        [T, T, F, T, T],
        Timing(for_seconds=2 * MINUTE),
        [
            (PENDING, None),
            (PENDING, None),
            (INACTIVE, None),
            (PENDING, None),
            (PENDING, None),
        ],
        id="false-while-pending-restarts-for",
    ),
    pytest.param(
        [T, F],
        Timing(),
        [(FIRING, "fired"), (INACTIVE, "resolved")],
        id="false-while-firing-resolves",
    ),
    pytest.param(
        [T, F, F, F],
        Timing(keep_firing_for_seconds=2 * MINUTE),
        [(FIRING, "fired"), (FIRING, None), (FIRING, None), (INACTIVE, "resolved")],
        id="keep-firing-for-delays-resolve",
    ),
    pytest.param(
        [T, F, T, F, F, F],
        Timing(keep_firing_for_seconds=2 * MINUTE),
        [
            (FIRING, "fired"),
            (FIRING, None),
            (FIRING, None),
            (FIRING, None),
            (FIRING, None),
            (INACTIVE, "resolved"),
        ],
        id="true-again-restarts-keep-firing",
    ),
    pytest.param(
        [T, F, T, F, T],
        Timing(),
        [
            (FIRING, "fired"),
            (INACTIVE, "resolved"),
            (FIRING, "fired"),
            (INACTIVE, "resolved"),
            (FIRING, "fired"),
        ],
        id="flapping-without-for",
    ),
    pytest.param(
        [T, T, F, T, F, T, T],
        Timing(for_seconds=MINUTE),
        [
            (PENDING, None),
            (FIRING, "fired"),
            (INACTIVE, "resolved"),
            (PENDING, None),
            (INACTIVE, None),
            (PENDING, None),
            (FIRING, "fired"),
        ],
        id="flapping-with-for-stays-quiet",
    ),
    pytest.param(
        [T, F, T, F],
        Timing(keep_firing_for_seconds=5 * MINUTE),
        [(FIRING, "fired"), (FIRING, None), (FIRING, None), (FIRING, None)],
        id="keep-firing-for-damps-flapping",
    ),
    pytest.param(
        [T, N, N, T],
        Timing(for_seconds=2 * MINUTE, no_data="keep_state"),
        [(PENDING, None), (PENDING, None), (PENDING, None), (FIRING, "fired")],
        id="no-data-keeps-pending-and-for",
    ),
    pytest.param(
        [T, N],
        Timing(for_seconds=MINUTE, no_data="ok"),
        [(PENDING, None), (INACTIVE, None)],
        id="no-data-ok-drops-pending",
    ),
    pytest.param(
        [T, N, N],
        Timing(no_data="keep_state"),
        [(FIRING, "fired"), (FIRING, None), (FIRING, None)],
        id="no-data-keeps-firing",
    ),
    pytest.param(
        [T, N],
        Timing(no_data="ok"),
        [(FIRING, "fired"), (INACTIVE, "resolved")],
        id="no-data-ok-resolves",
    ),
    pytest.param(
        [N, N, N],
        Timing(for_seconds=2 * MINUTE, no_data="alerting"),
        [(PENDING, None), (PENDING, None), (FIRING, "fired")],
        id="no-data-alerting-fires-after-for",
    ),
    pytest.param(
        [N, N],
        Timing(no_data="keep_state"),
        [(INACTIVE, None), (INACTIVE, None)],
        id="no-data-never-creates-alert",
    ),
    pytest.param(
        [T, E, E, F],
        Timing(on_error="keep_state"),
        [(FIRING, "fired"), (FIRING, None), (FIRING, None), (INACTIVE, "resolved")],
        id="error-keeps-firing",
    ),
    pytest.param(
        [E, E],
        Timing(for_seconds=MINUTE, on_error="alerting"),
        [(PENDING, None), (FIRING, "fired")],
        id="error-alerting-fires-after-for",
    ),
    pytest.param(
        [T, F, F],
        Timing(keep_firing_for_seconds=MINUTE, no_data="keep_state"),
        [(FIRING, "fired"), (FIRING, None), (INACTIVE, "resolved")],
        id="keep-firing-for-one-interval",
    ),
]


@pytest.mark.parametrize(("outcomes", "timing", "expected"), CASES)
def test_lifecycle_table(
    outcomes: list[Outcome], timing: Timing, expected: Trace
) -> None:
    assert trace(outcomes, timing) == expected


def test_lifecycle_resolved_carries_episode_times() -> None:
    timing = Timing(for_seconds=MINUTE)
    state = AlertState(alert="A", group="g", labels={})
    state, _ = step(state, T, 0.0, timing, 5.0)
    state, _ = step(state, T, 60.0, timing, 6.0)
    firing = state
    state, transition = step(state, F, 120.0, timing, 1.0)

    assert transition is Transition.RESOLVED
    assert firing.active_at == 0.0
    assert firing.fired_at == 60.0
    assert state.active_at is None
    assert state.keep_firing_until is None
    assert state.notified is False


def test_lifecycle_keep_firing_deadline_from_first_false() -> None:
    timing = Timing(keep_firing_for_seconds=5 * MINUTE)
    state = AlertState(alert="A", group="g", labels={})
    state, _ = step(state, T, 0.0, timing)
    state, _ = step(state, F, 60.0, timing)
    state, _ = step(state, F, 120.0, timing)

    assert state.keep_firing_until == 60.0 + 5 * MINUTE


@given(
    outcomes=st.lists(st.sampled_from([T, F, N, E]), max_size=40),
    for_steps=st.integers(min_value=0, max_value=4),
    keep_steps=st.integers(min_value=0, max_value=4),
    no_data=st.sampled_from(["ok", "alerting", "keep_state"]),
    on_error=st.sampled_from(["keep_state", "alerting"]),
)
def test_lifecycle_notifications_alternate(
    outcomes: list[Outcome],
    for_steps: int,
    keep_steps: int,
    no_data: str,
    on_error: str,
) -> None:
    timing = Timing(
        for_seconds=for_steps * MINUTE,
        keep_firing_for_seconds=keep_steps * MINUTE,
        no_data=no_data,
        on_error=on_error,
    )
    notifications = [t for _, t in trace(outcomes, timing) if t is not None]

    # Fired and resolved alternate, starting with fired: no episode is
    # notified twice and nothing resolves that never fired.
    assert notifications[::2] == ["fired"] * len(notifications[::2])
    assert notifications[1::2] == ["resolved"] * len(notifications[1::2])


@given(outcomes=st.lists(st.sampled_from([N, E]), min_size=1, max_size=20))
def test_lifecycle_missing_data_never_resolves(outcomes: list[Outcome]) -> None:
    timing = Timing(no_data="keep_state", on_error="keep_state")
    steps = trace([T, *outcomes], timing)

    assert all(state == FIRING for state, _ in steps)
    assert [t for _, t in steps] == ["fired"] + [None] * len(outcomes)
