"""Every Redis client kubetrade makes has cancel-safe connections, whatever the URL."""

from __future__ import annotations

import pytest
from redis.asyncio import BlockingConnectionPool

from kubetrade.state.client import (
    CancelSafeConnection,
    CancelSafeSSLConnection,
    CancelSafeUnixConnection,
    connect,
)


@pytest.mark.parametrize(("url", "kind"), [
    ("redis://127.0.0.1:6379/0", CancelSafeConnection),
    ("rediss://redis.example:6380/1", CancelSafeSSLConnection),
    ("unix:///run/kubetrade/redis.sock?db=0", CancelSafeUnixConnection),
])
async def test_connect_uses_the_cancel_safe_connection_of_the_scheme(
    url: str, kind: type
) -> None:
    client = connect(url)
    try:
        assert client.connection_pool.connection_class is kind
        assert client.connection_pool.connection_kwargs["decode_responses"] is True
    finally:
        await client.aclose()


async def test_a_bounded_pool_keeps_its_bound_and_wait() -> None:
    client = connect("redis://127.0.0.1:6379/0", max_connections=64, pool_timeout_s=10)
    try:
        pool = client.connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        assert (pool.max_connections, pool.timeout) == (64, 10)
        assert pool.connection_class is CancelSafeConnection
    finally:
        await client.aclose()
