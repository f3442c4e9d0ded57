"""The Redis client type, its errors and a reachability probe, for code outside
``kubetrade/state/``: it annotates with :data:`RedisClient` and catches
:data:`RedisError` without importing redis, and never calls Redis commands itself
(tests/unit/test_architecture.py checks both)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["Redis", "RedisClient", "RedisError", "connect", "ping"]

#: The asyncio Redis client (``decode_responses=True``: replies are ``str``); ``Redis``
#: is the same class under its own name.
RedisClient = Redis


async def ping(redis: RedisClient) -> None:
    """One round trip to the server. Raises :data:`RedisError` or ``OSError`` when it
    cannot be reached."""
    await redis.ping()  # type: ignore[misc]


def connect(url: str) -> RedisClient:
    """A client (connection pool) for the Redis at ``url``, replies decoded to ``str``
    as every reader in ``kubetrade.state`` expects."""
    client: RedisClient = Redis.from_url(url, decode_responses=True)
    return client
