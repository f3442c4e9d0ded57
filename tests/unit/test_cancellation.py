"""kubetrade.cancellation.wait_for keeps asyncio.wait_for's contract (Python 3.12's)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from kubetrade import cancellation


async def test_it_is_the_wait_for_everyone_uses_on_3_11() -> None:
    if sys.version_info < (3, 12):
        assert asyncio.wait_for is cancellation.wait_for
        assert asyncio.tasks.wait_for is cancellation.wait_for


async def test_result_in_time_and_timeout_cancels_the_awaited() -> None:
    assert await cancellation.wait_for(asyncio.sleep(0, "ok"), 1.0) == "ok"
    assert await cancellation.wait_for(asyncio.sleep(0, "ok"), None) == "ok"
    slow = asyncio.ensure_future(asyncio.sleep(10))
    with pytest.raises(TimeoutError):
        await cancellation.wait_for(slow, 0.01)
    assert slow.cancelled()


async def test_a_zero_timeout_returns_what_is_done_and_times_out_the_rest() -> None:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    assert await cancellation.wait_for(done, 0) == "ready"
    with pytest.raises(TimeoutError):
        await cancellation.wait_for(asyncio.sleep(10), 0)


async def test_the_callers_cancel_is_never_swallowed_when_the_awaited_just_finished() -> None:
    """The 3.11 bug: the inner future completes, then the caller is cancelled before
    wait_for returns; 3.11's returned the result and the caller ran on."""
    loop = asyncio.get_running_loop()
    inner: asyncio.Future[str] = loop.create_future()
    ran_on: list[str] = []

    async def caller() -> None:
        ran_on.append(await asyncio.wait_for(inner, 5))

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the caller waits in wait_for
    inner.set_result("late")  # finished ...
    task.cancel()  # ... and cancelled in the same loop iteration
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ran_on == []
