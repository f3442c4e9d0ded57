"""The kill switch in Redis: the ``{p}:emergency`` hash, its change channel, and the
notifier's record of what it last announced.

``write_emergency`` (in ``desired.py``) is the one writer of the hash; these are the
readers and the watch, so nothing outside ``kubetrade.state`` spells these keys.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from kubetrade.state.channels import Subscription
from kubetrade.state.keys import Keys
from kubetrade.state.schema import EmergencyState


async def read_emergency_state(redis: Redis, keys: Keys) -> EmergencyState | None:
    """The emergency state as stored; None when it was never set (empty hash)."""
    raw: Any = await redis.hgetall(keys.emergency)  # type: ignore[misc]
    if not raw:
        return None
    return EmergencyState.from_hash(raw)


async def publish_emergency(redis: Redis, keys: Keys, state: EmergencyState) -> None:
    """Store ``state`` as the emergency hash and publish it on the change channel, in one
    transaction (the one encoding runners read, whoever writes). The hash is replaced,
    not merged: a field the new state lacks (the operator's ``generation`` under a
    local or API write) must not survive from an older one. Raises RedisError."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.emergency)
        pipe.hset(keys.emergency, mapping=state.to_hash())  # type: ignore[arg-type]
        pipe.publish(keys.emergency_channel, state.to_message())
        await pipe.execute()


class EmergencyWatch:
    """Wakes up on the emergency change channel (``async with`` subscribes, leaving
    unsubscribes). A message only says "something changed": re-read the hash for the
    truth, since pub/sub drops what is sent while nobody listens."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._subscription = Subscription(redis, keys.emergency_channel)

    async def __aenter__(self) -> EmergencyWatch:
        await self._subscription.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._subscription.__aexit__(*exc)

    async def wait(self, seconds: float) -> None:
        """Until a change message arrives or ``seconds`` pass. Raises RedisError
        (RuntimeError outside ``async with``)."""
        await self._subscription.next(seconds)


async def swap_announced(redis: Redis, keys: Keys, marker: str) -> str | None:
    """Record ``marker`` (``action:since_ms``) as the emergency state last announced to
    the chat; returns the previous marker (None: never announced)."""
    previous: Any = await redis.getset(keys.emergency_announced, marker)
    return None if previous is None else str(previous)


__all__ = ["EmergencyWatch", "publish_emergency", "read_emergency_state", "swap_announced"]
