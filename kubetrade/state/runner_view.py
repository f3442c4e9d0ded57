"""One runner's state as the operator reads it (orders, positions, summary) and the kill
switch's hashes (the state in force, the runners' acknowledgements), as stored: field ->
text. The typed forms of the same values are in :mod:`kubetrade.state.schema` and
:class:`kubetrade.state.reader.StateReader`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.models import OrderStatus
from kubetrade.state.keys import Keys

_TERMINAL = {s.value for s in OrderStatus if s.is_terminal}


async def _hash(redis: Redis, key: str) -> dict[str, str]:
    raw: Mapping[Any, Any] = await redis.hgetall(key)
    return {str(k): str(v) for k, v in raw.items()}


async def open_order_ids(redis: Redis, keys: Keys, strategy: str) -> list[str]:
    """Client ids of the runner's orders that are not terminal, sorted (an order whose
    JSON does not parse is skipped). Raises RedisError."""
    open_ids = []
    for cid, text in (await _hash(redis, keys.orders(strategy))).items():
        try:
            status = json.loads(text).get("status")
        except (TypeError, ValueError):
            continue
        if status not in _TERMINAL:
            open_ids.append(cid)
    return sorted(open_ids)


async def position_symbols(redis: Redis, keys: Keys, strategy: str) -> list[str]:
    """Symbols of the runner's open positions, sorted. Raises RedisError."""
    return sorted(await _hash(redis, keys.positions(strategy)))


async def summary_fields(redis: Redis, keys: Keys, strategy: str) -> dict[str, str]:
    """The runner's summary hash as stored ({} when there is none). Raises RedisError."""
    return await _hash(redis, keys.summary(strategy))


async def emergency_fields(redis: Redis, keys: Keys) -> dict[str, str]:
    """The emergency hash as stored (action, since_ms, by, reason, maybe generation;
    {} when never set). Raises RedisError."""
    return await _hash(redis, keys.emergency)


async def emergency_ack_texts(redis: Redis, keys: Keys) -> dict[str, str]:
    """Runner -> JSON of its emergency acknowledgement. Raises RedisError."""
    return await _hash(redis, keys.emergency_acks)


async def forget_emergency_ack(redis: Redis, keys: Keys, strategy: str) -> None:
    """Remove ``strategy``'s emergency acknowledgement. Raises RedisError."""
    await redis.hdel(keys.emergency_acks, strategy)
