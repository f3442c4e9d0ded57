"""A task talking to a real Redis stops when it is cancelled, every time.

Cancelling is how a runner obeys SIGTERM and how ``kubetrade local`` stops; on Python
3.11 ``asyncio.wait_for`` (which redis-py 8 sends every command under) swallowed a
cancel that arrived as a send completed, and the task ran on: 54-58 of 100 cancels were
lost in this very test before ``kubetrade.state.client``'s cancel-safe connections.
"""

from __future__ import annotations

import asyncio

from kubetrade.state.client import connect


async def test_every_cancel_of_a_task_busy_with_redis_stops_it(redis_url: str) -> None:
    client = connect(redis_url)
    ignored: list[int] = []
    try:
        for attempt in range(100):
            async def busy() -> None:
                while True:
                    await client.incr("kt-cancel-test")  # type: ignore[misc]

            task = asyncio.create_task(busy())
            await asyncio.sleep(0.001 * (attempt % 7))  # land the cancel anywhere
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2.0)
            if not done:  # the cancel was swallowed: the task is still looping
                ignored.append(attempt)
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
            assert task.cancelled()
    finally:
        await client.aclose()
    assert ignored == []
