"""The engine's notion of "now" and the queue of events it has to tell the outside.

The engine reads no clock: its time is the close of the last candle it decided on (or
a later fill or order update), kept here as ``now_ms`` (epoch milliseconds). Every
decision becomes an ``EngineEvent`` stamped with that time unless the caller gives
one; the runner drains them into the audit and alert streams.
"""

from __future__ import annotations

from typing import Any

from kubetrade.domain import events as ev
from kubetrade.domain.events import EngineEvent
from kubetrade.domain.tracker import TrackerChange


class EventJournal:
    """Time from the market (``now_ms``) and the events not drained yet."""

    __slots__ = ("_events", "now_ms", "strategy")

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.now_ms = 0
        self._events: list[EngineEvent] = []

    def advance(self, ts_ms: int) -> None:
        """Move ``now_ms`` forward to ``ts_ms`` (never back)."""
        if ts_ms > self.now_ms:
            self.now_ms = ts_ms

    def drain(self) -> list[EngineEvent]:
        """The events queued since the last drain, oldest first; the queue empties."""
        out = self._events
        self._events = []
        return out

    def emit(
        self,
        action: str,
        reason: str = "",
        *,
        kind: str = ev.AUDIT,
        actor: str = ev.ACTOR_ENGINE,
        severity: str = "info",
        title: str = "",
        ts_ms: int | None = None,
        **detail: Any,
    ) -> None:
        """Queue one event (an alert too when ``kind`` is not ``audit``)."""
        self._events.append(
            EngineEvent(
                kind=kind,
                ts_ms=self.now_ms if ts_ms is None else ts_ms,
                actor=actor,
                action=action,
                strategy=self.strategy,
                reason=reason,
                detail=detail,
                severity=severity,
                title=title,
                text=reason,
            )
        )

    def tracker_change(self, change: TrackerChange, from_check: bool = False) -> None:
        """Audit (and alert on) the strategy tracker switching the strategy on or off;
        ``from_check``: a re-evaluation that kept it disabled."""
        if change.enabled:
            self.emit(
                "strategy_reenabled",
                change.reason,
                kind=ev.STRATEGY_REENABLED,
                actor=ev.ACTOR_RISK,
                title=f"{self.strategy}: strategy re-enabled",
                ts_ms=change.ts_ms,
                **change.detail,
            )
        elif from_check:
            self.emit(
                "strategy_kept_disabled", change.reason, actor=ev.ACTOR_RISK,
                ts_ms=change.ts_ms, **change.detail,
            )
        else:
            self.emit(
                "strategy_disabled",
                change.reason,
                kind=ev.STRATEGY_DISABLED,
                actor=ev.ACTOR_RISK,
                severity="warning",
                title=f"{self.strategy}: strategy disabled",
                ts_ms=change.ts_ms,
                **change.detail,
            )


__all__ = ["EventJournal"]
