"""The size ramp of a new live strategy (the runbook: "increase position sizes gradually
after confirming stability"). Pure: no I/O, no clock; the runner feeds it time and
incidents (kubetrade/runner/twin.py) and audits every change it returns.

The RiskPolicy says the steps (``sizeRampSteps``, percent of the full position
size, e.g. ``[10, 25, 50, 100]``), how long a clean period lasts
(``sizeRampPeriodHours``) and what an incident does (``sizeRampOnIncident``: ``hold``
or ``lower``). A strategy starts at the first step. After a whole period without
incident it moves up one step; an incident (a reconciliation mismatch, a breaker trip,
divergence from the paper twin past ``twinDivergencePct``) restarts the period and,
with ``lower``, moves one step down. The last step is the ramp's end.

How a step is applied: the engine sizes entries by ``maxPositionSizePct`` of equity,
so ``scaled_limits`` gives the limits with that percentage times the step (exits are
never sized by it: what is held is always sold in full).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubetrade.domain.risk import RiskLimits

HOUR_MS = 3_600_000
HUNDRED = Decimal(100)

RAISED = "raised"
HELD = "held"
LOWERED = "lowered"


@dataclass(frozen=True, slots=True)
class RampPolicy:
    """The ramp part of a RiskPolicy: steps (percent), period (ms), on_incident."""

    steps_pct: tuple[int, ...] = ()
    period_ms: int = 24 * HOUR_MS
    on_incident: str = "hold"

    @classmethod
    def from_limits(cls, limits: RiskLimits) -> RampPolicy:
        return cls(tuple(limits.size_ramp_steps),
                   int(limits.size_ramp_period_hours * HOUR_MS), limits.size_ramp_on_incident)

    @property
    def enabled(self) -> bool:
        return bool(self.steps_pct)


@dataclass(frozen=True, slots=True)
class RampState:
    """Where a strategy is on its ramp: ``step`` (index into the steps) and when its
    current clean period began (epoch ms)."""

    step: int = 0
    period_start_ms: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"step": self.step, "period_start_ms": self.period_start_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RampState:
        return cls(int(data.get("step", 0)), int(data.get("period_start_ms", 0)))


@dataclass(frozen=True, slots=True)
class RampChange:
    """One change to audit: ``action`` raised/held/lowered, from and to (step index and
    percent), why, at ``ts_ms``."""

    action: str
    from_step: int
    to_step: int
    from_pct: int
    to_pct: int
    reason: str
    ts_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "from_step": self.from_step, "to_step": self.to_step,
                "from_pct": self.from_pct, "to_pct": self.to_pct, "reason": self.reason,
                "ts_ms": self.ts_ms}


def size_pct(policy: RampPolicy, state: RampState) -> int:
    """The percent of the full size in force (100 without a ramp)."""
    if not policy.enabled:
        return 100
    return policy.steps_pct[min(state.step, len(policy.steps_pct) - 1)]


def scaled_limits(limits: RiskLimits, pct: int) -> RiskLimits:
    """``limits`` with ``max_position_size_pct`` at ``pct`` percent of itself (``limits``
    unchanged at 100). Raises ValueError for ``pct`` outside 1..100."""
    if not 1 <= pct <= 100:
        raise ValueError(f"size percent must be within 1..100, got {pct}")
    if pct == 100:
        return limits
    return limits.model_copy(
        update={"max_position_size_pct": limits.max_position_size_pct * pct / HUNDRED})


def clamp(policy: RampPolicy, state: RampState) -> RampState:
    """``state`` within a (changed) policy's steps."""
    if not policy.enabled or state.step < len(policy.steps_pct):
        return state
    return RampState(len(policy.steps_pct) - 1, state.period_start_ms)


def on_tick(policy: RampPolicy, state: RampState, now_ms: int) -> tuple[RampState,
                                                                       RampChange | None]:
    """Time passed without incident: one step up once a whole period is clean."""
    if not policy.enabled or state.step >= len(policy.steps_pct) - 1:
        return state, None
    if now_ms - state.period_start_ms < policy.period_ms:
        return state, None
    new = RampState(state.step + 1, now_ms)
    hours = Decimal(policy.period_ms) / HOUR_MS
    return new, _change(policy, RAISED, state, new,
                        f"{hours.normalize():f} h without incident", now_ms)


def on_incident(policy: RampPolicy, state: RampState, reason: str,
                now_ms: int) -> tuple[RampState, RampChange | None]:
    """An incident: the clean period restarts at ``now_ms``; ``lower`` also moves one
    step down (held at the first). None without a ramp."""
    if not policy.enabled:
        return state, None
    step = max(0, state.step - 1) if policy.on_incident == "lower" else state.step
    new = RampState(step, now_ms)
    action = LOWERED if step < state.step else HELD
    return new, _change(policy, action, state, new, reason, now_ms)


def _change(policy: RampPolicy, action: str, old: RampState, new: RampState, reason: str,
            now_ms: int) -> RampChange:
    return RampChange(action, old.step, new.step, size_pct(policy, old), size_pct(policy, new),
                      reason, now_ms)


__all__ = ["HELD", "LOWERED", "RAISED", "RampChange", "RampPolicy", "RampState", "clamp",
           "on_incident", "on_tick", "scaled_limits", "size_pct"]
