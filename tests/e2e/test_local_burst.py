"""`kubetrade local` under a burst of dashboard requests keeps its Redis connections
bounded (a bounded pool: requests queue for a connection instead of opening one each
until the process runs out of file descriptors) and answers every request."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from kubetrade.cli._local.embedded_redis import POOL_CONNECTIONS, POOL_CONNECTIONS_PER_STRATEGY
from tests.e2e.test_local import (  # noqa: F401 - fixture
    EXAMPLE_STRATEGIES,
    Local,
    start_local,
    wait_for,
)

STRATEGIES = EXAMPLE_STRATEGIES


def redis_connections(pid: int, redis_port: int) -> int:
    """TCP connections of process ``pid`` to ``redis_port`` (from /proc, no extra tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and fields[9] in inodes:
                count += 1
    return count


def test_request_burst_keeps_redis_connections_bounded(
    start_local: Callable[..., Local], redis_url: str,  # noqa: F811 - the fixture
) -> None:
    local = start_local(redis_url)
    wait_for(lambda: httpx.get(local.url + "/health", timeout=2).status_code == 200, 30,
             "/health")
    port = urlparse(redis_url).port or 6379

    async def burst(n: int) -> list[int]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            answers = await asyncio.gather(
                *[client.get(local.url + path) for _ in range(n // 3)
                  for path in ("/api/status", "/api/positions", "/api/strategies")]
            )
        return [a.status_code for a in answers]

    codes = asyncio.run(burst(450))
    assert set(codes) == {200}, sorted(set(codes))
    bound = POOL_CONNECTIONS + POOL_CONNECTIONS_PER_STRATEGY * STRATEGIES
    assert redis_connections(local.proc.pid, port) <= bound
