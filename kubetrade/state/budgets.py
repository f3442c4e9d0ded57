"""Rate budgets shared through Redis by every client of one egress IP and one exchange
account (runners, the operator, the API): Binance's request weight per IP per minute
and orders per account per 10 s and per day (``kubetrade.exchange.ratelimit``).

Each take is one Lua script, so it is atomic across clients: it checks every window of
the kind (and the IP's pause after a 429/418) and spends in all of them, or in none and
answers how long to wait. Windows are fixed, as Binance counts them: the key carries the
window's number (``now_ms // window_ms``) and expires after two windows. The exchange's
header counts raise a window's count (never lower it: our own count may be ahead of an
answer that left the exchange earlier).

``RedisBudget`` implements ``kubetrade.exchange.ratelimit.RateBudget`` with the windows
of a ``plan`` (``ratelimit.budget_plan``: the assembly passes it; state does not import
exchange); any Redis error becomes ``ConnectionError`` (``BudgetUnavailable``: the
client falls back to its local share).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.state.keys import Keys

#: (kind, priority, now ms) -> [(window key part, allowance, window ms)], shortest first.
Plan = Callable[[str, bool, int], list[tuple[str, int, int]]]
#: The kind whose windows are per egress IP (the others are per account).
KIND_PER_IP = "weight"

# KEYS[1] = pause key, KEYS[2..] = window keys; ARGV[1] = amount,
# then per window key: its allowance and its length in ms; ARGV[2] = now (ms).
# Returns 0 when spent everywhere, else the milliseconds to wait.
_TAKE = """
local amount = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then return paused end
local wait = 0
for i = 2, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + amount > limit then
    local w = window - (now % window)
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS do
  redis.call('INCRBY', KEYS[i], amount)
  redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[2 * i]))
end
return 0
"""

# KEYS[1] = window key; ARGV[1] = the exchange's count, ARGV[2] = expiry (ms)
_OBSERVE = """
local used = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > cur then redis.call('SET', KEYS[1], used, 'PX', tonumber(ARGV[2])) end
return math.max(used, cur)
"""

# KEYS[1] = pause key; ARGV[1] = pause length (ms): extended, never shortened
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return ms
"""


class RedisBudget:
    """The shared budgets of one egress IP (``ip``) and one account (``account``: the
    Strategy's ``credentialsSecret`` name, the account key of issue 15)."""

    def __init__(self, redis: Redis, keys: Keys, *, ip: str, account: str, plan: Plan) -> None:
        self.redis = redis
        self.keys = keys
        self.plan = plan
        self.scopes = {KIND_PER_IP: f"ip:{ip}"}
        self.account_scope = f"account:{account}"
        self.pause_key = keys.budget(f"ip:{ip}", "paused")
        self._take = redis.register_script(_TAKE)
        self._observe = redis.register_script(_OBSERVE)
        self._pause = redis.register_script(_PAUSE)

    def _scope(self, kind: str) -> str:
        return self.scopes.get(kind, self.account_scope)

    def _key(self, kind: str, part: str) -> str:
        return self.keys.budget(self._scope(kind), part)

    async def take(self, kind: str, amount: int, *, priority: bool, now_ms: int) -> float:
        """See ``RateBudget.take``."""
        windows = self.plan(kind, priority, now_ms)
        keys = [self.pause_key] + [self._key(kind, part) for part, _, _ in windows]
        args: list[Any] = [amount, now_ms]
        for _, allowance, window_ms in windows:
            args += [allowance, window_ms]
        wait = await self._run(self._take, keys, args)
        return int(wait) / 1000

    async def observe(self, kind: str, used: int, *, now_ms: int) -> None:
        """See ``RateBudget.observe`` (the shortest window is the one the header counts)."""
        part, _, window_ms = self.plan(kind, False, now_ms)[0]
        await self._run(self._observe, [self._key(kind, part)], [used, 2 * window_ms])

    async def pause(self, seconds: float) -> None:
        """See ``RateBudget.pause``."""
        await self._run(self._pause, [self.pause_key], [max(1, int(seconds * 1000))])

    async def used(self, kind: str, now_ms: int) -> int:
        """Spent in the current shortest window of ``kind`` (for tests and the bench)."""
        part, _, _ = self.plan(kind, False, now_ms)[0]
        raw = await self._run_get(self._key(kind, part))
        return int(raw or 0)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"redis: {exc}") from exc

    async def _run_get(self, key: str) -> Any:
        try:
            return await self.redis.get(key)
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"redis: {exc}") from exc


__all__ = ["RedisBudget"]
