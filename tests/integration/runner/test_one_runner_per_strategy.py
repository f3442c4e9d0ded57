"""Two runners of one strategy on one Redis: the one started last trades, the other
stops before its next order (a second `kubetrade local` on the same REDIS_URL, or a
`kubetrade runner` beside it, made every order twice: found by a new-user trial)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from kubetrade.runner.core import Runner
from kubetrade.state.client import RedisClient, connect
from kubetrade.state.keys import Keys
from kubetrade.state.store import Superseded
from tests.integration.runner.paper_runner import paper_runner, sma_manifest

MANIFEST = sma_manifest("twice", 3, 8)


async def _runner(redis: RedisClient, keys: Keys) -> Runner:
    return await paper_runner(redis, keys, MANIFEST, replay_interval=0.005)


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait for ``check`` (a count another task advances) up to ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_the_runner_started_last_trades_and_the_other_stops(redis_url: str) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    redis = connect(redis_url)
    first = await _runner(redis, keys)
    first_run = asyncio.create_task(first.run())
    second_run: asyncio.Task[None] | None = None
    try:
        await _until(lambda: first.candles_processed >= 30, 30, "the first trading")
        second = await _runner(redis, keys)  # restores what the first committed
        second_run = asyncio.create_task(second.run())
        with pytest.raises(Superseded, match="another runner of this strategy started"):
            async with asyncio.timeout(30):
                await first_run
        done = first.candles_processed
        await _until(lambda: second.candles_processed >= 30, 30, "the second trading")
        assert first.candles_processed == done  # the first took no candle more
        assert not second_run.done()
    finally:
        for task in (first_run, second_run):
            if task is not None and not task.done():
                task.cancel()
                with pytest.raises((asyncio.CancelledError, Superseded)):
                    await task
        await redis.aclose()


async def test_a_lost_claim_is_taken_again_not_read_as_another_runner(redis_url: str) -> None:
    """A Redis that restarted empty (or was flushed) holds no claim: the runner's next
    commit claims it again and it trades on, instead of stopping as 'superseded'."""
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    redis = connect(redis_url)
    runner = await _runner(redis, keys)
    running = asyncio.create_task(runner.run())
    try:
        await _until(lambda: runner.candles_processed >= 10, 30, "trading")
        await redis.delete(keys.runner_instance("twice"))
        done = runner.candles_processed
        await _until(lambda: runner.candles_processed >= done + 10, 30, "trading on")
        assert not running.done()
        assert await redis.get(keys.runner_instance("twice")) is not None
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await redis.aclose()
