"""The Redis of ``kubetrade local``: ``REDIS_URL`` when set, else an embedded server.

Without ``REDIS_URL`` an embedded Redis (fakeredis' TCP server on a loopback port) holds
the state, in memory. Either way the process shares one client on a bounded pool.
"""

from __future__ import annotations

import os
import socket
import threading

from fakeredis import TcpFakeServer
from redis.asyncio import BlockingConnectionPool, Redis

from kubetrade.logs import get_logger

log = get_logger("kubetrade.local")

#: Connections for request bursts (API, runners' commands), beyond those held for good.
POOL_CONNECTIONS = 64
#: Held for good per strategy: its emergency and desired-state subscriptions (+1 spare).
POOL_CONNECTIONS_PER_STRATEGY = 3


class EmbeddedRedis:
    """fakeredis' TCP server on a free loopback port, served from a daemon thread."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-redis", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def redis_url_or_embedded() -> tuple[str, EmbeddedRedis | None]:
    """(URL of the Redis to use, the embedded server to stop at exit or None).

    ``REDIS_URL`` from the environment when set; else an :class:`EmbeddedRedis` is
    started (and the loss of state at exit is logged as a warning).
    """
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        log.info("local.redis", note="state in the Redis at REDIS_URL")
        return redis_url, None
    embedded = EmbeddedRedis()
    log.warning(
        "local.redis_embedded",
        url=embedded.url,
        note="REDIS_URL not set: using an embedded in-memory Redis (fakeredis); state "
        "lives in memory and is lost when this process exits. Set REDIS_URL to keep it.",
    )
    return embedded.url, embedded


def bounded_redis(url: str, strategies: int) -> Redis:
    """One client for the whole process on a bounded pool: under a burst (dashboard,
    many runners) commands queue for a connection instead of opening one each until the
    process runs out of file descriptors. Subscriptions hold their connection for good,
    so the bound grows with the number of strategies."""
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=POOL_CONNECTIONS + POOL_CONNECTIONS_PER_STRATEGY * strategies,
        timeout=10,
    )
    return Redis(connection_pool=pool)
