"""kubetrade local's API thread hands desired-state calls to the runners' loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from kubetrade.cli._local.api_thread import DesiredOnLoop
from kubetrade.state.desired import LocalDesiredState, NotFoundError


class Recorder:
    """Stands in for the kill switch: notes the loop each call ran on."""

    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]:
        self.loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return {"action": action, "by": actor, "reason": reason}

    async def get_strategy(self, name: str) -> dict[str, Any]:
        self.loops.append(asyncio.get_running_loop())
        raise NotFoundError(name)


@pytest.fixture
def runners_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_calls_run_on_the_runners_loop_and_answer_on_the_callers(
    runners_loop: asyncio.AbstractEventLoop,
) -> None:
    target = Recorder()
    desired = DesiredOnLoop(cast(LocalDesiredState, target), runners_loop)

    async def call() -> dict[str, Any]:
        return await desired.set_emergency("stop", "alice", "test")

    assert asyncio.run(call()) == {"action": "stop", "by": "alice", "reason": "test"}
    assert target.loops == [runners_loop]


def test_an_error_reaches_the_caller(runners_loop: asyncio.AbstractEventLoop) -> None:
    target = Recorder()
    desired = DesiredOnLoop(cast(LocalDesiredState, target), runners_loop)

    async def call() -> dict[str, Any]:
        return await desired.get_strategy("nope")

    with pytest.raises(NotFoundError):
        asyncio.run(call())
    assert target.loops == [runners_loop]


def test_on_the_same_loop_it_calls_directly() -> None:
    async def call() -> dict[str, Any]:
        target = Recorder()
        desired = DesiredOnLoop(cast(LocalDesiredState, target), asyncio.get_running_loop())
        answer = await desired.set_emergency("close-all", "bob", "same loop")
        assert target.loops == [asyncio.get_running_loop()]
        return answer

    assert asyncio.run(call())["action"] == "close-all"
