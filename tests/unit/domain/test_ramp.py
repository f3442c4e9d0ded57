"""The size ramp's steps (kubetrade/domain/ramp.py): up after clean periods, held or
lowered on an incident, the period restarting; the limits it scales; the policy's field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from kubetrade.domain.ramp import (
    HELD,
    HOUR_MS,
    LOWERED,
    RAISED,
    RampPolicy,
    RampState,
    clamp,
    on_incident,
    on_tick,
    scaled_limits,
    size_pct,
)
from kubetrade.domain.risk import RiskLimits

POLICY = RampPolicy((10, 25, 50, 100), 24 * HOUR_MS, "hold")


def test_steps_up_after_each_clean_period_and_stops_at_the_last() -> None:
    state = RampState(0, 0)
    assert size_pct(POLICY, state) == 10
    state, change = on_tick(POLICY, state, 24 * HOUR_MS - 1)
    assert change is None and state.step == 0
    seen = []
    for day in range(1, 6):
        state, change = on_tick(POLICY, state, day * 24 * HOUR_MS)
        seen.append(None if change is None else (change.action, change.from_pct, change.to_pct))
    assert seen == [(RAISED, 10, 25), (RAISED, 25, 50), (RAISED, 50, 100), None, None]
    assert size_pct(POLICY, state) == 100


def test_an_incident_holds_and_restarts_the_clean_period() -> None:
    state = RampState(1, 0)
    state, change = on_incident(POLICY, state, "reconciliation mismatch", 20 * HOUR_MS)
    assert change is not None and change.action == HELD
    assert (change.from_pct, change.to_pct) == (25, 25)
    assert change.reason == "reconciliation mismatch" and state == RampState(1, 20 * HOUR_MS)
    state, change = on_tick(POLICY, state, 30 * HOUR_MS)  # a day after the start, not after it
    assert change is None
    state, change = on_tick(POLICY, state, 44 * HOUR_MS)
    assert change is not None and change.action == RAISED and state.step == 2


def test_lower_moves_one_step_down_and_not_below_the_first() -> None:
    lower = RampPolicy((10, 50, 100), HOUR_MS, "lower")
    state, change = on_incident(lower, RampState(2, 0), "breaker trip", 5)
    assert change is not None and (change.action, change.to_pct, state.step) == (LOWERED, 50, 1)
    state, change = on_incident(lower, RampState(0, 0), "breaker trip", 5)
    assert change is not None and change.action == HELD and state.step == 0


def test_no_ramp_is_full_size_and_never_changes() -> None:
    off = RampPolicy()
    assert size_pct(off, RampState()) == 100
    assert on_tick(off, RampState(), 10**12) == (RampState(), None)
    assert on_incident(off, RampState(), "x", 1) == (RampState(), None)


def test_scaled_limits_scale_the_position_size_only() -> None:
    limits = RiskLimits(max_position_size_pct=Decimal(20))
    half = scaled_limits(limits, 25)
    assert half.max_position_size_pct == Decimal(5)
    assert half.max_order_notional == limits.max_order_notional
    assert scaled_limits(limits, 100) is limits
    with pytest.raises(ValueError):
        scaled_limits(limits, 0)


def test_policy_from_the_riskpolicy_fields_and_clamp() -> None:
    limits = RiskLimits.model_validate({"sizeRampSteps": [20, 100], "sizeRampPeriodHours": 2,
                                        "sizeRampOnIncident": "lower"})
    policy = RampPolicy.from_limits(limits)
    assert policy == RampPolicy((20, 100), 2 * HOUR_MS, "lower")
    assert clamp(policy, RampState(5, 7)) == RampState(1, 7)
    assert RiskLimits().size_ramp_steps == []  # default off
    with pytest.raises(ValidationError, match="sizeRampSteps"):
        RiskLimits.model_validate({"sizeRampSteps": [50, 50]})
    with pytest.raises(ValidationError):
        RiskLimits.model_validate({"sizeRampOnIncident": "raise"})


def test_state_round_trip() -> None:
    assert RampState.from_dict(RampState(2, 99).to_dict()) == RampState(2, 99)
