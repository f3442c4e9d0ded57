"""The test bed is real: Redis answers like Redis, the API server like Kubernetes."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

pytestmark = pytest.mark.redis


async def test_redis_round_trip(redis_client: aioredis.Redis) -> None:
    await redis_client.set("bed:key", "value", ex=60)
    await redis_client.hset("bed:hash", mapping={"a": "1", "b": "2"})
    assert await redis_client.get("bed:key") == "value"
    assert await redis_client.hgetall("bed:hash") == {"a": "1", "b": "2"}
    assert 0 < await redis_client.ttl("bed:key") <= 60


async def test_redis_starts_empty(redis_client: aioredis.Redis) -> None:
    assert await redis_client.dbsize() == 0


async def test_redis_pubsub(redis_client: aioredis.Redis, redis_url: str) -> None:
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe("bed:events")
        # The subscribe confirmation means the server has registered us, so the
        # publish below cannot be lost.
        confirm = await pubsub.get_message(timeout=5)
        assert confirm is not None and confirm["type"] == "subscribe"
        publisher = aioredis.from_url(redis_url, decode_responses=True)
        try:
            assert await publisher.publish("bed:events", "halt") == 1
        finally:
            await publisher.aclose()
        message = await asyncio.wait_for(_next_message(pubsub), timeout=5)
    assert message == {"type": "message", "pattern": None, "channel": "bed:events", "data": "halt"}


async def _next_message(pubsub: aioredis.client.PubSub) -> dict[str, object]:
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if msg is not None:
            return dict(msg)
