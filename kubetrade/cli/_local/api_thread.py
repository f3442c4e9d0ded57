"""The API/dashboard of ``kubetrade local`` on an event loop of its own, in a thread.

The runners, the kill switch, the notifier and the stop stay on the process' main event
loop; the API serves from :class:`ApiThread`. A burst of dashboard requests then keeps
*its* loop busy, not the runners': on one shared loop every await of a runner (a timer,
a Redis reply) queued behind the whole ready queue of request handlers (bench/
local_api.py: candle due -> done p99 5 s under 50 concurrent requests). The API's loop
is uvloop's when installed (uvicorn's ``loop="auto"``).

What crosses between the two:

- desired state, the kill switch above all: the API's :class:`DesiredOnLoop` runs every
  call on the main loop's :class:`~kubetrade.cli._local.kill_switch.LocalKillSwitch`,
  so a stop requested while Redis is down still halts the runners in process at once;
- the stop: :class:`~kubetrade.cli._local.stopping.StopRequest` sets the server's
  ``should_exit`` (a flag uvicorn polls) and the main loop awaits the thread's end.

The API has its own Redis client (a connection pool belongs to one event loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis

from kubetrade.cli._local.stopping import StoppableServer
from kubetrade.logs import get_logger
from kubetrade.state.desired import LocalDesiredState

log = get_logger("kubetrade.local")

T = TypeVar("T")


class DesiredOnLoop:
    """The :class:`~kubetrade.state.desired.DesiredState` of the API thread: each call
    runs on ``loop`` (the runners' loop) with ``target`` and returns its result or
    raises its error; cancelling the caller cancels the call there."""

    def __init__(self, target: LocalDesiredState, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    async def _on_loop(self, call: Coroutine[Any, Any, T]) -> T:
        if asyncio.get_running_loop() is self._loop:
            return await call
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))

    async def list_strategies(self) -> list[dict[str, Any]]:
        return await self._on_loop(self._target.list_strategies())

    async def get_strategy(self, name: str) -> dict[str, Any]:
        return await self._on_loop(self._target.get_strategy(name))

    async def put_strategy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
        return await self._on_loop(self._target.put_strategy(manifest, actor))

    async def set_strategy_enabled(self, name: str, enabled: bool, actor: str) -> dict[str, Any]:
        return await self._on_loop(self._target.set_strategy_enabled(name, enabled, actor))

    async def get_risk_policy(self, name: str) -> dict[str, Any]:
        return await self._on_loop(self._target.get_risk_policy(name))

    async def has_risk_policy(self, name: str) -> bool:
        return await self._on_loop(self._target.has_risk_policy(name))

    async def put_risk_policy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
        return await self._on_loop(self._target.put_risk_policy(manifest, actor))

    async def update_risk_policy(
        self, name: str, patch: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        return await self._on_loop(self._target.update_risk_policy(name, patch, actor))

    async def get_emergency(self) -> dict[str, Any]:
        return await self._on_loop(self._target.get_emergency())

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]:
        return await self._on_loop(self._target.set_emergency(action, actor, reason))


class ApiThread:
    """``server`` serving on ``sock`` from its own thread and event loop; ``redis`` (the
    API's own client) is closed on that loop when the server has stopped."""

    def __init__(self, server: StoppableServer, sock: Any, redis: Redis) -> None:
        self.server = server
        self._sock = sock
        self._redis = redis
        self._thread: threading.Thread | None = None

    async def serve(self) -> None:
        """Run the server until it exits (``server.should_exit``); re-raises what ended
        its thread with an error. Cancelling this wait tells the server to exit and
        waits for the thread (the server's graceful stop is bounded)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def finished(error: BaseException | None) -> None:
            if not done.done():
                done.set_result(error)

        def main() -> None:
            error: BaseException | None = None
            try:
                with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as run:
                    run.run(self._serve())
            except BaseException as exc:  # handed to the main loop, raised there
                error = exc
            loop.call_soon_threadsafe(finished, error)

        self._thread = threading.Thread(target=main, name="kubetrade-api", daemon=True)
        self._thread.start()
        try:
            error = await asyncio.shield(done)
        except asyncio.CancelledError:
            self.server.should_exit = True
            await asyncio.shield(done)
            raise
        if error is not None:
            raise error

    async def _serve(self) -> None:
        try:
            await self.server.serve(sockets=[self._sock])
        finally:
            await self._redis.aclose()
