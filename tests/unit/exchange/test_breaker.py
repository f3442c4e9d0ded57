"""Circuit breaker state machine on a ManualClock: when it trips, what it lets through
while open/half-open, and the transitions it reports."""

from __future__ import annotations

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.exchange.breaker import (
    BreakerPolicy,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
)


def make(threshold: int = 3, cooldown: float = 30.0) -> tuple[CircuitBreaker, ManualClock,
                                                               list[BreakerTransition]]:
    clock = ManualClock(1_000_000)
    seen: list[BreakerTransition] = []
    return CircuitBreaker(clock, BreakerPolicy(threshold, cooldown), seen.append), clock, seen


def test_trips_after_consecutive_failures_only() -> None:
    b, _, seen = make(threshold=3)
    b.record_failure("x")
    b.record_failure("x")
    b.record_success()  # resets the streak
    b.record_failure("x")
    b.record_failure("x")
    assert b.state is BreakerState.CLOSED
    b.record_failure("timeout")
    assert b.state is BreakerState.OPEN
    assert [(t.old, t.new) for t in seen] == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert "3 consecutive failures" in seen[0].reason and "timeout" in seen[0].reason


def test_open_refuses_until_cooldown_then_one_probe() -> None:
    b, clock, seen = make(threshold=1, cooldown=30)
    b.record_failure("down")
    assert not b.allow()
    assert b.retry_in_s == 30
    clock.advance(29.9)
    assert not b.allow()
    clock.advance(0.1)
    assert not b.allow(probe_ok=False)  # an order is never the probe
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # only one probe at a time
    assert not b.allow(probe_ok=False)
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.allow(probe_ok=False)
    assert [t.new for t in seen] == [BreakerState.OPEN, BreakerState.HALF_OPEN,
                                     BreakerState.CLOSED]


def test_failed_probe_reopens_for_a_new_cooldown() -> None:
    b, clock, _ = make(threshold=2, cooldown=10)
    b.record_failure("a")
    b.record_failure("a")
    clock.advance(10)
    assert b.allow()
    b.record_failure("still down")
    assert b.state is BreakerState.OPEN
    assert b.retry_in_s == 10
    assert b.trips == 2
    clock.advance(10)
    assert b.allow()
    b.release_probe()  # e.g. cancelled: no verdict, the next caller may probe
    assert b.allow()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(0)
    with pytest.raises(ValueError, match="cooldown_s"):
        BreakerPolicy(1, 0)
