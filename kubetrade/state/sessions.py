"""Dashboard sessions in Redis: each login's live refresh token, the revocation list and
the failed-login counters (``keys.refresh_token``, ``keys.revoked_token``,
``keys.login_failures``). What a token or a count *means* is decided in
``kubetrade.api.auth``; this module only stores it."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import Keys

# Compare-and-swap of a family's live refresh jti: 1 rotated, 0 reuse, -1 unknown family.
_ROTATE = """
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class Rotation(IntEnum):
    """The answer of :meth:`SessionStore.rotate`."""

    ROTATED = 1  # the presented refresh token was the family's live one; replaced
    REUSED = 0  # an older refresh token of a live family: replayed or stolen
    UNKNOWN = -1  # no such family (expired or revoked)


class SessionStore:
    """Refresh-token families and revoked tokens. TTLs are in seconds."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._rotate = self._redis.register_script(_ROTATE)

    async def start_family(self, family: str, refresh_jti: str, ttl_s: int) -> None:
        """A new login: ``refresh_jti`` is the family's live refresh token."""
        await self._redis.set(self._keys.refresh_token(family), refresh_jti, ex=ttl_s)

    async def any_revoked(self, jti: str, family: str) -> bool:
        """Whether the token ``jti`` or its whole family was revoked."""
        n: int = await self._redis.exists(
            self._keys.revoked_token(jti), self._keys.revoked_token(f"family-{family}")
        )
        return n > 0

    async def rotate(self, family: str, old_jti: str, new_jti: str, ttl_s: int) -> Rotation:
        """Atomically replace the family's live refresh ``old_jti`` by ``new_jti``."""
        result = await self._rotate(
            keys=[self._keys.refresh_token(family)], args=[old_jti, new_jti, ttl_s]
        )
        return Rotation(int(result))

    async def revoke_token(self, jti: str, ttl_s: int) -> None:
        """Revoke one token for ``ttl_s`` (its remaining life)."""
        await self._redis.set(self._keys.revoked_token(jti), "1", ex=ttl_s)

    async def revoke_family(self, family: str, ttl_s: int) -> None:
        """Revoke every token of one login for ``ttl_s`` and forget its refresh token."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.revoked_token(f"family-{family}"), "1", ex=ttl_s)
            pipe.delete(self._keys.refresh_token(family))
            await pipe.execute()


class LoginCounter:
    """Login attempts per client in a fixed window (``keys.login_failures``)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis: Any = redis
        self._keys = keys

    async def count(self, client: str, window_s: int) -> tuple[int, int]:
        """Count one attempt atomically; ``(attempts in the window, seconds left in the
        window)`` (seconds <= 0 when Redis reports no expiry)."""
        key = self._keys.login_failures(client)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s, nx=True)
            pipe.ttl(key)
            count, _, ttl = await pipe.execute()
        return int(count), int(ttl) if ttl else 0

    async def reset(self, client: str) -> None:
        """Forget the client's attempts (a successful login)."""
        await self._redis.delete(self._keys.login_failures(client))
