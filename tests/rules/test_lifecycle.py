from __future__ import annotations

import pytest

from rules.lifecycle import (
    FIRING,
    INACTIVE,
    PENDING,
    AlertState,
    Outcome,
    Timing,
    Transition,
    fingerprint,
    step,
)

T, F, N, E = Outcome.TRUE, Outcome.FALSE, Outcome.NO_DATA, Outcome.ERROR


def run(
    outcomes: list[Outcome], timing: Timing, interval: float = 60.0
) -> list[tuple[str, str | None]]:
    state = AlertState(alert="A", group="g", labels={"alertname": "A"})
    trace = []
    for index, outcome in enumerate(outcomes):
        state, transition = step(state, outcome, index * interval, timing, 1.0)
        trace.append((state.state, transition.value if transition else None))
    return trace


@pytest.mark.parametrize(
    ("outcomes", "timing", "expected"),
    [
        pytest.param(
            [T, F],
            Timing(),
            [(FIRING, "fired"), (INACTIVE, "resolved")],
            id="for-zero-fires-at-once",
        ),
        pytest.param(
            [T, T, T],
            Timing(for_seconds=120),
            [(PENDING, None), (PENDING, None), (FIRING, "fired")],
            id="for-two-minutes",
        ),
        pytest.param(
            [T, F, T],
            Timing(for_seconds=120),
            [(PENDING, None), (INACTIVE, None), (PENDING, None)],
            id="pending-drops-without-notification",
        ),
        pytest.param(
            [T, F, F, F],
            Timing(keep_firing_for_seconds=120),
            [(FIRING, "fired"), (FIRING, None), (FIRING, None), (INACTIVE, "resolved")],
            id="keep-firing-for",
        ),
        pytest.param(
            [T, N, N, F],
            Timing(no_data="keep_state"),
            [(FIRING, "fired"), (FIRING, None), (FIRING, None), (INACTIVE, "resolved")],
            id="no-data-keeps-state",
        ),
        pytest.param(
            [T, N],
            Timing(no_data="ok"),
            [(FIRING, "fired"), (INACTIVE, "resolved")],
            id="no-data-ok-resolves",
        ),
        pytest.param(
            [N, N],
            Timing(no_data="alerting", for_seconds=60),
            [(PENDING, None), (FIRING, "fired")],
            id="no-data-alerting-fires",
        ),
        pytest.param(
            [T, E, E],
            Timing(on_error="keep_state"),
            [(FIRING, "fired"), (FIRING, None), (FIRING, None)],
            id="error-keeps-state",
        ),
        pytest.param(
            [T, T, F, T, T],
            Timing(confirmations=2),
            [
                (PENDING, None),
                (FIRING, "fired"),
                (INACTIVE, "resolved"),
                (PENDING, None),
                (FIRING, "fired"),
            ],
            id="two-confirmations",
        ),
    ],
)
def test_lifecycle_sequences(
    outcomes: list[Outcome], timing: Timing, expected: list[tuple[str, str | None]]
) -> None:
    assert run(outcomes, timing) == expected


def test_lifecycle_pending_keeps_active_at() -> None:
    timing = Timing(for_seconds=300)
    state = AlertState(alert="A", group="g", labels={})
    state, _ = step(state, T, 100.0, timing)
    state, _ = step(state, T, 160.0, timing)
    assert state.active_at == 100.0
    state, transition = step(state, T, 400.0, timing)
    assert transition is Transition.FIRED
    assert state.fired_at == 400.0


def test_lifecycle_restored_firing_sends_nothing_new() -> None:
    restored = AlertState(
        alert="A",
        group="g",
        labels={},
        state=FIRING,
        active_at=0.0,
        fired_at=10.0,
        notified=True,
    )
    state, transition = step(restored, T, 20.0, Timing())
    assert transition is None
    assert state.fired_at == 10.0


def test_fingerprint_ignores_label_order() -> None:
    assert fingerprint("A", {"a": "1", "b": "2"}) == fingerprint(
        "A", {"b": "2", "a": "1"}
    )
    assert fingerprint("A", {"a": "1"}) != fingerprint("B", {"a": "1"})
