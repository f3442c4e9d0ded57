"""Injected time, so tests and replay run faster than real time.

Everything that asks "what time is it" or waits takes a ``Clock``. Live code gets
``SystemClock``; replay and tests get ``ManualClock``, whose ``sleep`` advances time
instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def utc_datetime(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to (``set``/``advance``) or when slept on."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def set(self, ts_ms: int) -> None:
        if ts_ms < self._now_ms:
            raise ValueError(f"clock cannot go back: {ts_ms} < {self._now_ms}")
        self._now_ms = ts_ms

    def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)
