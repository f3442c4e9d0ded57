"""Runner listeners outlive outages (issue 17 item 2): after a Redis restart the
emergency listener subscribes again and re-reads the state in force (a stop written
while it was away applies); a handler that raises does not end it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.runner.watch import background_tasks
from kubetrade.state.desired import write_emergency
from kubetrade.state.keys import Keys
from tests.e2e.test_local_outage import RedisServer


class Recorder:
    """The part of a Runner the emergency listener calls."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, fail_first: bool = False) -> None:
        self.name = "r1"
        self.redis, self.keys = redis, keys
        self.spec = SimpleNamespace(risk_policy_ref="default")
        self.seen: list[EmergencyCommand] = []
        self.fail_first = fail_first
        self.changed = asyncio.Event()

    async def apply_emergency(self, cmd: EmergencyCommand) -> None:
        self.seen.append(cmd)
        self.changed.set()
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("a bug in the handler")

    async def wait_for(self, action: str, within: float = 20) -> EmergencyCommand:
        async def until() -> EmergencyCommand:
            while True:
                for cmd in self.seen:
                    if cmd.action == action:
                        return cmd
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(until(), within)


async def _subscribed(client: aioredis.Redis, keys: Keys) -> None:
    """Wait (up to 20 s) until the listener is subscribed to the emergency channel."""
    for _ in range(400):
        if (await client.pubsub_numsub(keys.emergency_channel))[0][1]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the listener never subscribed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    s.start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.stop()


async def test_after_a_redis_restart_a_stop_written_meanwhile_applies(
    server: RedisServer,
) -> None:
    keys = Keys("listen")
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    runner = Recorder(client, keys)
    [listen] = background_tasks(runner)  # type: ignore[arg-type]
    task = asyncio.create_task(listen)
    try:
        await _subscribed(client, keys)  # listening before the outage
        server.stop()
        server.start()
        await client.connection_pool.disconnect()  # the test's own pooled connections died
        # written without a message on the channel: only a re-read finds it
        await client.hset(keys.emergency, mapping={"action": "stop", "since_ms": "7",
                                                   "by": "test", "reason": "away"})
        cmd = await runner.wait_for("stop")
        assert cmd.since_ms == 7 and cmd.source == "redis"
        await write_emergency(client, keys, "close-all", "test", "published")
        assert (await runner.wait_for("close-all")).reason == "published"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def test_a_handler_that_raises_does_not_end_the_listener(server: RedisServer) -> None:
    keys = Keys("listen2")
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    runner = Recorder(client, keys, fail_first=True)
    [listen] = background_tasks(runner)  # type: ignore[arg-type]
    task = asyncio.create_task(listen)
    try:
        await write_emergency(client, keys, "stop", "test", "first")
        await runner.wait_for("stop")
        await write_emergency(client, keys, "close-all", "test", "second")
        assert (await runner.wait_for("close-all")).reason == "second"
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
