"""Writer leases through Redis: one holder per name among every process that shares the
Redis and the key prefix (runner pods of a cluster). The candle recorder takes one per
exchange/symbol/timeframe (``kubetrade.marketdata.writer_lease.WriterLease``).

A lease is the string ``{p}:lease:{name}`` holding the holder's token, with a TTL in
milliseconds counted by Redis (``PX``). Taking is ``SET NX PX``; renewing and giving up
are compare-and-set in Lua (only the token that holds the lease extends or deletes it),
so a holder whose lease expired and was taken by another cannot renew or delete the new
holder's. Any Redis error becomes ``ConnectionError``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.state.keys import Keys

# KEYS[1] = lease key; ARGV[1] = token, ARGV[2] = TTL (ms). 1: the token holds it now.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

# KEYS[1] = lease key; ARGV[1] = token. 1: given up; 0: held by another or by nobody.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """``WriterLease`` on Redis; see the module doc."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, series: str, token: str, ttl_ms: int, now_ms: int) -> bool:
        """Take ``series`` for ``token`` or renew it, for ``ttl_ms`` on Redis's clock
        (``now_ms`` unused); false when another token holds it."""
        return bool(await self._run(self._acquire, [self.keys.lease(series)], [token, ttl_ms]))

    async def release(self, series: str, token: str, now_ms: int) -> None:
        """Delete the lease if ``token`` holds it."""
        await self._run(self._release, [self.keys.lease(series)], [token])

    async def holder(self, series: str) -> str | None:
        """The token holding ``series`` now (None: nobody)."""
        try:
            value = await self.redis.get(self.keys.lease(series))
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"redis: {exc}") from exc
        return None if value is None else str(value)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"redis: {exc}") from exc


__all__ = ["RedisLease"]
