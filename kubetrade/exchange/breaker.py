"""Circuit breaker for the exchange connection: closed -> open -> half-open -> closed.

Why our own (small) one: the breaker must run on the injected Clock (so a 5-minute
outage is tested in test time), must never let an *order* be the probe, and must tell
the runner about every transition (alerts, metrics, reconciliation before trading
resumes). The libraries we looked at (pybreaker, aiobreaker) read wall time directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from kubetrade.domain.clock import Clock


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    old: BreakerState
    new: BreakerState
    reason: str
    failures: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker trips and how long it stays open (checked when made)."""

    failure_threshold: int = 5
    """Consecutive failures that open it (at least 1)."""
    cooldown_s: float = 30.0
    """Seconds it stays open before one probe call is let through."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.cooldown_s <= 0:
            raise ValueError(f"cooldown_s must be > 0, got {self.cooldown_s}")


class CircuitBreaker:
    """Trips after ``failure_threshold`` consecutive failures; after ``cooldown_s`` one
    probe call is let through (half-open): success closes it, failure re-opens it for
    another cool-down. Pure state machine: callers ask ``allow()`` and report outcomes.
    """

    def __init__(
        self,
        clock: Clock,
        policy: BreakerPolicy = BreakerPolicy(),
        on_change: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        self.clock = clock
        self.failure_threshold = policy.failure_threshold
        self.cooldown_ms = int(policy.cooldown_s * 1000)
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_ms = 0
        self._probe_in_flight = False
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def retry_in_s(self) -> float:
        """Seconds until the next probe may run (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, (self._opened_ms + self.cooldown_ms - self.clock.now_ms()) / 1000)

    def _move(self, new: BreakerState, reason: str) -> None:
        old, self._state = self._state, new
        if new is BreakerState.OPEN:
            self._opened_ms = self.clock.now_ms()
            self.trips += 1
        if old is not new and self.on_change is not None:
            self.on_change(
                BreakerTransition(old, new, reason, self._failures, self.clock.now_ms())
            )

    def allow(self, probe_ok: bool = True) -> bool:
        """May a call go out now? ``probe_ok=False`` for calls that must not be the
        half-open probe (orders): they pass only when closed."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not probe_ok or self.retry_in_s > 0:
                return False
            self._move(BreakerState.HALF_OPEN, "cool-down elapsed, probing")
        # half-open: exactly one probe at a time
        if not probe_ok or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._move(BreakerState.CLOSED, "probe succeeded")

    def record_failure(self, reason: str) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._move(BreakerState.OPEN, f"probe failed: {reason}")
        elif self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._move(
                BreakerState.OPEN, f"{self._failures} consecutive failures, last: {reason}"
            )

    def release_probe(self) -> None:
        """The probe ended without telling us anything about availability."""
        self._probe_in_flight = False

    def force_open(self, reason: str) -> None:
        if self._state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN, reason)

    def reset(self, reason: str = "reset") -> None:
        self._failures = 0
        self._probe_in_flight = False
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, reason)
