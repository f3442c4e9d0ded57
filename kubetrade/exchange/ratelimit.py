"""Client-side throttle by Binance request weight, plus the exchange's own Retry-After.

Binance limits each IP to a weight budget per minute (6000 on spot today; each endpoint
costs a documented weight) and answers 429 with ``Retry-After`` when it is exceeded,
then 418 (an IP ban) if the client keeps going. So we spend from a token bucket of
weights refilled per minute, keep a safety margin, adopt the server's own
``X-MBX-USED-WEIGHT-1M`` count when it is higher than ours, and stop *every* call
until a Retry-After has passed. Time comes from the injected Clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kubetrade.domain.clock import Clock

# Request weight of each ExchangeClient operation on Binance spot (rest-api.md).
WEIGHTS: dict[str, int] = {
    "load_markets": 20,  # exchangeInfo
    "fetch_candles": 2,  # klines
    "fetch_last_price": 2,  # ticker/price with symbol
    "fetch_balances": 20,  # account
    "create_order": 1,
    "fetch_order": 4,
    "fetch_open_orders": 6,  # with symbol; 80 without
    "fetch_open_orders_all": 80,
    "cancel_order": 1,
    "cancel_all_orders": 1,
    "fetch_fills": 20,  # myTrades
    "server_time_ms": 1,
    "api_restrictions": 1,
}


class WeightLimiter:
    """Token bucket of request weight: ``limit_per_minute * budget`` tokens, refilled
    continuously over a minute."""

    def __init__(
        self,
        clock: Clock,
        limit_per_minute: int = 6000,
        budget: float = 0.8,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        if limit_per_minute <= 0:
            raise ValueError(f"limit_per_minute must be > 0, got {limit_per_minute}")
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be in (0, 1], got {budget}")
        self.clock = clock
        self.capacity = limit_per_minute * budget
        self.rate_per_ms = self.capacity / 60_000
        self._tokens = self.capacity
        self._last_ms = clock.now_ms()
        self._paused_until_ms = 0
        self.on_pause = on_pause
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time spent throttled (for metrics)
        self.spent = 0

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    @property
    def paused_for_s(self) -> float:
        return max(0.0, (self._paused_until_ms - self.clock.now_ms()) / 1000)

    def _refill(self) -> None:
        now = self.clock.now_ms()
        if now > self._last_ms:
            refill = (now - self._last_ms) * self.rate_per_ms
            self._tokens = min(self.capacity, self._tokens + refill)
        self._last_ms = max(self._last_ms, now)

    def pause(self, seconds: float) -> None:
        """Stop all calls for ``seconds`` (a 429/418 Retry-After)."""
        until = self.clock.now_ms() + int(seconds * 1000)
        if until > self._paused_until_ms:
            self._paused_until_ms = until
            if self.on_pause is not None:
                self.on_pause(seconds)

    def observe_used_weight(self, used: int) -> None:
        """Adopt the exchange's count of weight used this minute when it says we have
        less left than we think (other clients on the same IP spend it too)."""
        self._refill()
        self._tokens = min(self._tokens, max(self.capacity - used, 0.0))

    def try_acquire(self, weight: int) -> bool:
        """Take ``weight`` now if allowed; never waits."""
        if self.paused_for_s > 0:
            return False
        self._refill()
        if self._tokens >= weight:
            self._tokens -= weight
            self.spent += weight
            return True
        return False

    async def acquire(self, weight: int) -> None:
        """Wait (on the clock) until ``weight`` may be spent, then spend it."""
        if weight > self.capacity:
            raise ValueError(f"weight {weight} exceeds the bucket capacity {self.capacity}")
        async with self._lock:
            while True:
                pause = self.paused_for_s
                if pause > 0:
                    self.waited_s += pause
                    await self.clock.sleep(pause)
                    continue
                if self.try_acquire(weight):
                    return
                wait = (weight - self._tokens) / self.rate_per_ms / 1000
                self.waited_s += wait
                await self.clock.sleep(max(wait, 0.001))
