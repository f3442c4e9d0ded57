"""Tell the chat when the kill switch changes by any other path (API, kubectl).

Nothing else raises the runbook's "emergency engaged/resumed" alerts, and an
operator who hears about a stop only when P&L stops moving has heard too late. The
emergency state is one hash in Redis (written locally by ``write_emergency``, and
in a cluster mirrored there by the operator and the API), so the notifier watches it:
on every message of the emergency channel and, because pub/sub drops messages while
nobody listens, on start and every ``recheck_seconds``. A marker in Redis remembers
the last state announced, so a restart does not announce it again. The alert goes
through the durable alert stream like every other alert.

Changes made from Telegram are not announced again: the chat already has the reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.emergency import EmergencyAction
from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.client import Redis, RedisError
from kubetrade.state.emergency import EmergencyWatch, read_emergency_state, swap_announced
from kubetrade.state.keys import Keys

log = logging.getLogger(__name__)


def announced_key(keys: Keys) -> str:
    return keys.emergency_announced


def _alert(action: str, by: str, reason: str, ts_ms: int) -> Alert:
    """The runbook's "emergency engaged" / "emergency resumed" alert."""
    if action == EmergencyAction.NONE:
        return Alert(AlertKind.EMERGENCY_RESUMED, Severity.INFO,
                     "Emergency cleared: trading resumed",
                     f"by {by}" + (f" — {reason}" if reason else ""), ts_ms)
    what = "halt and cancel pending orders" if action == EmergencyAction.STOP else \
        "halt, cancel pending orders and sell every position at market"
    return Alert(AlertKind.EMERGENCY_ENGAGED, Severity.CRITICAL,
                 f"Emergency {action.upper()} engaged",
                 f"by {by}" + (f" — {reason}" if reason else "") +
                 f". Runners {what}. /status to follow, /resume to undo.", ts_ms,
                 data={"action": action, "by": by})


class EmergencyAnnouncer:
    def __init__(
        self, redis: Redis, keys: Keys, clock: Clock | None = None,
        recheck_seconds: float = 30.0,
    ) -> None:
        self.redis: Any = redis
        self.keys = keys
        self.clock: Clock = clock or SystemClock()
        self.recheck_seconds = recheck_seconds
        self.announced = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def check_once(self) -> Alert | None:
        """Announce the current emergency state if it was not announced yet."""
        state = await read_emergency_state(self.redis, self.keys)
        if state is None:
            return None
        action = state.action
        by = state.by or "?"
        marker = f"{action}:{state.since_ms}"
        previous = await swap_announced(self.redis, self.keys, marker)
        if previous == marker:
            return None
        if by.startswith("telegram:"):
            return None
        if previous is None and action == EmergencyAction.NONE:
            return None  # first start of the notifier on a system that trades normally
        alert = _alert(action, by, state.reason, state.since_ms)
        await raise_alert(self.redis, self.keys, alert)
        self.announced += 1
        return alert

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                async with EmergencyWatch(self.redis, self.keys) as watch:
                    await self.check_once()
                    while not self._stop.is_set():
                        await watch.wait(self.recheck_seconds)
                        await self.check_once()
            except RedisError as exc:
                log.warning("emergency announcer: Redis error %s; retrying",
                            type(exc).__name__)
                try:
                    async with asyncio.timeout(5.0):
                        await self._stop.wait()
                except TimeoutError:
                    pass
