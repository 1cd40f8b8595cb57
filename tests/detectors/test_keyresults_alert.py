"""Tests of the attainment miss-alert state machine."""

from __future__ import annotations

import math

import pytest

from detectors.keyresults import AttainmentAlertState


def _run(state: AttainmentAlertState, probabilities: list[float]) -> list[bool]:
    return [state.update(probability) for probability in probabilities]


def test_alert_fires_after_two_low_evaluations() -> None:
    state = AttainmentAlertState(threshold=0.5)
    assert _run(state, [0.4, 0.3, 0.2]) == [False, True, True]


def test_alert_single_dip_does_not_fire() -> None:
    state = AttainmentAlertState(threshold=0.5)
    assert _run(state, [0.4, 0.55, 0.45, 0.7]) == [False, False, False, False]


def test_alert_clears_only_above_margin() -> None:
    state = AttainmentAlertState(threshold=0.5)
    history = _run(state, [0.3, 0.3, 0.55, 0.6, 0.61])
    assert history == [False, True, True, True, False]


def test_alert_custom_margin_and_confirmations() -> None:
    state = AttainmentAlertState(threshold=0.3, clear_margin=0.2, confirmations=1)
    assert _run(state, [0.29, 0.45, 0.51]) == [True, True, False]


def test_alert_nan_keeps_firing_and_resets_streak() -> None:
    state = AttainmentAlertState(threshold=0.5)
    assert _run(state, [0.4, math.nan, 0.4]) == [False, False, False]
    assert _run(state, [0.4, math.nan]) == [True, True]


def test_alert_state_round_trip() -> None:
    state = AttainmentAlertState(threshold=0.5)
    _run(state, [0.4, 0.4])
    restored = AttainmentAlertState(threshold=0.5)
    restored.restore(state.to_dict())
    assert restored.firing is True
    assert restored.low_streak == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"threshold": 1.5}, "threshold 1.5 is outside"),
        ({"threshold": 0.5, "clear_margin": -0.1}, "margin -0.1 is outside"),
        ({"threshold": 0.5, "confirmations": 0}, "Confirmations 0 is below 1"),
    ],
    ids=["threshold", "margin", "confirmations"],
)
def test_alert_invalid_parameters_rejected(
    arguments: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AttainmentAlertState(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("trend_misses", "expected"),
    [
        ([True, True, True], [False, True, True]),
        ([True, False, True], [False, False, True]),
        ([False, False, False], [False, False, False]),
    ],
    ids=["trend-agrees", "trend-late", "trend-never"],
)
def test_alert_waits_for_trend_confirmation(
    trend_misses: list[bool], expected: list[bool]
) -> None:
    state = AttainmentAlertState(threshold=0.5)
    history = [
        state.update(probability, trend_misses=misses)
        for probability, misses in zip([0.4, 0.3, 0.2], trend_misses, strict=True)
    ]
    assert history == expected


def test_alert_trend_never_clears_firing() -> None:
    state = AttainmentAlertState(threshold=0.5)
    _run(state, [0.3, 0.3])
    assert state.update(0.2, trend_misses=False) is True
    assert state.update(0.65, trend_misses=False) is False
