"""Retrying a failed reconcile without flooding: per object, the next try waits 5 s,
then 10, 20 ... up to 5 minutes; the failure is reported (condition, Event, one log
line) once per distinct message, not on every try. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[str, str, str]  #: (kind, namespace, name)


@dataclass
class _Failing:
    attempts: int
    next_ms: int
    message: str


@dataclass
class Backoff:
    """Failing objects and when each may be tried again."""

    base_s: float = 5.0
    cap_s: float = 300.0
    _failing: dict[Key, _Failing] = field(default_factory=dict)

    def due(self, key: Key, now_ms: int) -> bool:
        """Whether ``key`` may be reconciled now (not failing, or its wait is over)."""
        state = self._failing.get(key)
        return state is None or now_ms >= state.next_ms

    def failed(self, key: Key, now_ms: int, message: str) -> tuple[bool, float]:
        """Record a failure: (whether to report it -- first time or another message,
        seconds until the next try)."""
        state = self._failing.get(key)
        attempts = 1 if state is None else state.attempts + 1
        delay = min(self.cap_s, self.base_s * 2 ** (attempts - 1))
        report = state is None or state.message != message
        self._failing[key] = _Failing(attempts, now_ms + int(delay * 1000), message)
        return report, delay

    def succeeded(self, key: Key) -> bool:
        """Forget ``key``'s failures; True when it had some (a recovery to report)."""
        return self._failing.pop(key, None) is not None
