"""The parts of a clean stop of `kubetrade local`, each on its own: the market data that
ends at the stop, and the bounded stop of tasks, one of which ignores its first cancel
as Python 3.11's ``asyncio.wait_for`` can make it (inside redis-py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

from kubetrade.cli._local.stopping import GatedMarket, stop_tasks
from kubetrade.domain.models import Candle


def _candle(ts_ms: int) -> Candle:
    one = Decimal(1)
    return Candle(ts_ms, one, one, one, one, one)


class Endless:
    """A market whose next candle comes when the test releases it."""

    kind = "replay"

    def __init__(self) -> None:
        self.release = asyncio.Queue[int]()
        self.closed = False

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        try:
            while True:
                yield "BTC/USDT", _candle(await self.release.get())
        finally:
            self.closed = True


async def test_no_candle_after_the_stop_even_while_waiting_for_one() -> None:
    inner, stop = Endless(), asyncio.Event()
    gated = GatedMarket(inner, stop)
    seen: list[int] = []

    async def consume() -> None:
        async for _symbol, candle in gated.candles({}):
            seen.append(candle.ts_ms)
            if len(seen) == 2:
                stop.set()  # the stop arrives while the loop handles its 2nd candle
                inner.release.put_nowait(3)  # and a 3rd candle is ready at once

    inner.release.put_nowait(1)
    inner.release.put_nowait(2)
    await asyncio.wait_for(consume(), 5)
    assert seen == [1, 2]
    assert inner.closed


async def test_a_waiting_loop_ends_at_the_stop() -> None:
    inner, stop = Endless(), asyncio.Event()
    gated = GatedMarket(inner, stop)
    seen: list[int] = []

    async def consume() -> None:
        async for _s, candle in gated.candles({}):
            seen.append(candle.ts_ms)

    task = asyncio.create_task(consume())
    inner.release.put_nowait(7)
    for _ in range(1000):  # until the loop has the candle and waits for the next
        if seen:
            break
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert seen == [7]
    assert inner.closed


async def test_stop_tasks_gets_past_a_swallowed_cancel() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # as wait_for does when its inner call just finished
        await asyncio.Event().wait()  # a second cancel is needed

    async def polite() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(stubborn(), name="stubborn"),
             asyncio.create_task(polite(), name="polite")]
    await asyncio.sleep(0)
    assert await stop_tasks(tasks, grace_s=0, cancel_s=5) == []
    assert swallowed.is_set()
    assert all(t.cancelled() for t in tasks)


async def test_stop_tasks_names_what_never_ends() -> None:
    let_go = False

    async def immortal() -> None:
        while not let_go:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    assert await stop_tasks([task], grace_s=0, cancel_s=0.3) == ["immortal"]
    let_go = True  # the test ends what it started
    task.cancel()
    await asyncio.wait_for(task, 5)


async def test_stop_tasks_lets_tasks_end_by_themselves_first() -> None:
    ended = asyncio.Event()

    async def finishing() -> None:
        await asyncio.sleep(0.05)
        ended.set()

    task = asyncio.create_task(finishing())
    assert await stop_tasks([task], grace_s=5, cancel_s=5) == []
    assert ended.is_set() and not task.cancelled()


AFTER_THE_STOP = """
import asyncio, os, signal, sys, time
from kubetrade.cli._local.stopping import StopRequest

async def main():
    stop = StopRequest()
    with stop.handling_signals():
        stop.exit_code = int(sys.argv[1])
    return stop

asyncio.run(main())
os.kill(os.getpid(), getattr(signal, sys.argv[2]))  # the process is ending: asked again
time.sleep(30)
sys.exit(99)
"""


def test_a_signal_after_the_stop_ends_the_process_with_the_stops_status() -> None:
    # a repeated Ctrl-C during the process' last moments is no traceback, a repeated
    # SIGTERM no death by signal: the process ends at once with the stop's own status
    for code, sig in ((0, "SIGTERM"), (0, "SIGINT"), (1, "SIGTERM")):
        done = subprocess.run([sys.executable, "-c", AFTER_THE_STOP, str(code), sig],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code, (sig, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
