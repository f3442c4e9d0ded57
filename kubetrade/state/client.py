"""The Redis client type, its errors and a reachability probe, for code outside
``kubetrade/state/``: it annotates with :data:`RedisClient` and catches
:data:`RedisError` without importing redis, and never calls Redis commands itself
(tests/unit/test_architecture.py checks both)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["RedisClient", "RedisError", "ping"]

#: The asyncio Redis client (``decode_responses=True``: replies are ``str``).
RedisClient = Redis


async def ping(redis: RedisClient) -> None:
    """One round trip to the server. Raises :data:`RedisError` or ``OSError`` when it
    cannot be reached."""
    await redis.ping()  # type: ignore[misc]
