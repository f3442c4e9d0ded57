"""Waiting on conditions (with a deadline) for the notify tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def eventually(predicate: Callable[[], Any], within: float = 60.0) -> None:
    """Wait until ``predicate()`` (sync or async) is truthy; fail after ``within`` s.

    Polls because the states waited on (Redis pending lists, counters) have no
    notification to wait for.
    """

    async def poll() -> None:
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), within)
