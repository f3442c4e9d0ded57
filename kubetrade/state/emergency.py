"""The kill switch in Redis: the ``{p}:emergency`` hash, its change channel, and the
notifier's record of what it last announced.

``write_emergency`` (in ``desired.py``) is the one writer of the hash; these are the
readers and the watch, so nothing outside ``kubetrade.state`` spells these keys.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from kubetrade.state.keys import Keys
from kubetrade.state.schema import EmergencyState


async def read_emergency_state(redis: Redis, keys: Keys) -> EmergencyState | None:
    """The emergency state as stored; None when it was never set (empty hash)."""
    raw: Any = await redis.hgetall(keys.emergency)  # type: ignore[misc]
    if not raw:
        return None
    return EmergencyState.from_hash(raw)


async def subscribe_emergency(redis: Redis, keys: Keys) -> PubSub:
    """A pub/sub subscribed to the emergency change channel (the caller closes it).
    A message only says "something changed": re-read the hash for the truth."""
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(keys.emergency_channel)
    except BaseException:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        raise
    return pubsub


async def swap_announced(redis: Redis, keys: Keys, marker: str) -> str | None:
    """Record ``marker`` (``action:since_ms``) as the emergency state last announced to
    the chat; returns the previous marker (None: never announced)."""
    previous: Any = await redis.getset(keys.emergency_announced, marker)
    return None if previous is None else str(previous)


__all__ = ["read_emergency_state", "subscribe_emergency", "swap_announced"]
