"""The emergency hash runners read is replaced on every write, never merged: a stop
written by the API or `kubetrade local` after the operator mirrored Emergency
generation 7 must not carry generation 7 (runners acknowledge per generation, so a
stale one would be acknowledged for an action it never described)."""

from __future__ import annotations

import redis.asyncio as aioredis

from kubetrade.state.emergency import publish_emergency, read_emergency_state
from kubetrade.state.keys import Keys
from kubetrade.state.schema import EmergencyState


async def test_a_write_without_a_generation_drops_the_mirrored_one(
    redis_client: aioredis.Redis,
) -> None:
    keys = Keys("emh")
    await publish_emergency(redis_client, keys,
                            EmergencyState("stop", 1, "operator", "cr", generation=7))
    assert (await read_emergency_state(redis_client, keys)) == EmergencyState(
        "stop", 1, "operator", "cr", generation=7)
    await publish_emergency(redis_client, keys, EmergencyState("none", 2, "alice", "resume"))
    assert (await read_emergency_state(redis_client, keys)) == EmergencyState(
        "none", 2, "alice", "resume")
    assert "generation" not in await redis_client.hgetall(keys.emergency)
