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
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubetrade.domain.clock import Clock

log = logging.getLogger(__name__)

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


# ---- budgets shared by every client of one egress IP / one account ----------------------
#
# Binance counts in fixed windows: request weight per IP per calendar minute (6,000 on
# spot), orders per account per 10 seconds (50) and per day (160,000), and says how much
# of each is used in the answer headers (X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S).
# Every runner, the operator and the API on one IP and account spend from the same
# windows, so the budget lives where they all see it (Redis: kubetrade.state.budgets,
# one Lua script per take, atomic); this module holds the rules and the local fallback.

KIND_WEIGHT = "weight"
KIND_ORDERS = "orders"
#: Reasons of orders that close a position (stop-loss, close-all): when the budget is
#: short they may spend the reserve entries may not touch.
CLOSING_REASONS = frozenset({"stop_loss", "close_all"})


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed window of the exchange: at most ``limit`` per ``window_ms``."""

    name: str
    limit: int
    window_ms: int

    def index(self, now_ms: int) -> int:
        return now_ms // self.window_ms

    def wait_ms(self, now_ms: int) -> int:
        """Milliseconds until this window ends (a new one starts empty)."""
        return self.window_ms - now_ms % self.window_ms


#: Binance spot's limits (GET /api/v3/exchangeInfo rateLimits).
BINANCE_WINDOWS: dict[str, tuple[Window, ...]] = {
    KIND_WEIGHT: (Window("1m", 6000, 60_000),),
    KIND_ORDERS: (Window("10s", 50, 10_000), Window("1d", 160_000, 86_400_000)),
}
#: Share of each limit ordinary calls may use; closing orders may use CLOSING_SHARE.
ENTRY_SHARE = 0.8
CLOSING_SHARE = 0.96


def allowed(window: Window, priority: bool, share: float = 1.0) -> int:
    """What may be spent in ``window``: the entry or the closing share of its limit,
    times ``share`` (the local fallback's part), at least 1."""
    return max(1, int(window.limit * (CLOSING_SHARE if priority else ENTRY_SHARE) * share))


#: What a shared budget raises when it cannot be asked (Redis down): a builtin, so the
#: implementation (kubetrade.state) need not import this package.
BudgetUnavailable = ConnectionError


def budget_plan(kind: str, priority: bool, now_ms: int) -> list[tuple[str, int, int]]:
    """The windows a take of ``kind`` spends in at ``now_ms``, shortest first:
    (``<kind>:<window>:<window number>``, allowance, window length in ms)."""
    return [(f"{kind}:{w.name}:{w.index(now_ms)}", allowed(w, priority), w.window_ms)
            for w in BINANCE_WINDOWS[kind]]


class RateBudget(Protocol):
    """Budgets shared by every client of one IP and one account (implemented over Redis
    by ``kubetrade.state.budgets.RedisBudget`` with ``budget_plan``; the assembly wires
    it, so the exchange package does not import the state package). Raise
    ``BudgetUnavailable`` (ConnectionError) when it cannot answer."""

    async def take(self, kind: str, amount: int, *, priority: bool, now_ms: int) -> float:
        """Spend ``amount`` of ``kind`` (KIND_WEIGHT / KIND_ORDERS) in every window of
        it, all or nothing: 0 when spent, else the seconds to wait before asking again
        (a window is full, or every client is paused after a 429/418)."""
        ...

    async def observe(self, kind: str, used: int, *, now_ms: int) -> None:
        """The exchange's own count of the current (shortest) window: the shared count
        is raised to it (other clients, a trade made by hand, our own lost requests)."""
        ...

    async def pause(self, seconds: float) -> None:
        """Every client of the IP waits ``seconds`` from now (a 429/418 Retry-After)."""
        ...


class LocalWindows:
    """Fixed-window counters in this process: the fallback when the shared budget is
    down, each client taking ``share`` of the limits (conservative: it cannot see the
    others)."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.used: dict[tuple[str, str, int], int] = {}

    def take(self, kind: str, amount: int, *, priority: bool, now_ms: int) -> float:
        """As ``RateBudget.take``, from this process' share."""
        wait = 0
        for w in BINANCE_WINDOWS[kind]:
            if self.used.get((kind, w.name, w.index(now_ms)), 0) + amount > allowed(
                w, priority, self.share
            ):
                wait = max(wait, w.wait_ms(now_ms))
        if wait:
            return wait / 1000
        for w in BINANCE_WINDOWS[kind]:
            key = (kind, w.name, w.index(now_ms))
            self.used[key] = self.used.get(key, 0) + amount
        current = {(kind, w.name): w.index(now_ms) for w in BINANCE_WINDOWS[kind]}
        self.used = {k: v for k, v in self.used.items() if current.get(k[:2], k[2]) <= k[2]}
        return 0.0


class BudgetGate:
    """The shared budget as one client spends it: waits (on the clock) until a take
    succeeds; the exchange's header counts are passed on after each call; when the
    shared budget cannot answer, the local share is used and that is logged (once per
    change), and the shared one is asked again only every ``retry_shared_s`` (a Redis
    that is down must not cost every exchange call a connection timeout)."""

    def __init__(self, budget: RateBudget, clock: Clock, *, local_share: float = 0.1,
                 retry_shared_s: float = 5.0) -> None:
        self.budget = budget
        self.clock = clock
        self.local = LocalWindows(local_share)
        self.retry_shared_ms = int(retry_shared_s * 1000)
        self._next_try_ms = 0
        self.shared_ok = True
        self.observed: dict[str, int] = {}
        self.waited_s = 0.0

    def note(self, kind: str, used: int) -> None:
        """A header count seen (sync: from the client's answer hook); sent by ``flush``."""
        self.observed[kind] = max(used, self.observed.get(kind, 0))

    async def spend(self, kind: str, amount: int, *, priority: bool) -> None:
        """Wait until ``amount`` of ``kind`` is spent."""
        while True:
            now = self.clock.now_ms()
            try:
                if not self.shared_ok and now < self._next_try_ms:
                    raise BudgetUnavailable("shared budget down: not asked again yet")
                wait = await self.budget.take(kind, amount, priority=priority, now_ms=now)
                self._shared(True)
            except BudgetUnavailable as exc:
                self._shared(False, exc)
                wait = self.local.take(kind, amount, priority=priority, now_ms=now)
            if wait <= 0:
                return
            self.waited_s += wait
            await self.clock.sleep(wait)

    async def flush(self) -> None:
        """Pass the exchange's counts seen since the last call on to the shared budget."""
        observed, self.observed = self.observed, {}
        if not self.shared_ok:
            return
        for kind, used in observed.items():
            try:
                await self.budget.observe(kind, used, now_ms=self.clock.now_ms())
            except BudgetUnavailable as exc:
                self._shared(False, exc)

    async def pause(self, seconds: float) -> None:
        """Tell every client to wait ``seconds`` (a Retry-After)."""
        if not self.shared_ok:
            return
        try:
            await self.budget.pause(seconds)
        except BudgetUnavailable as exc:
            self._shared(False, exc)

    def _shared(self, ok: bool, exc: Exception | None = None) -> None:
        if not ok:
            self._next_try_ms = self.clock.now_ms() + self.retry_shared_ms
        if ok == self.shared_ok:
            return
        self.shared_ok = ok
        if ok:
            log.warning("budget.shared_restored: rate budgets shared through Redis again")
        else:
            log.warning("budget.shared_unavailable (%s): using a local share of %.0f %% of "
                        "the exchange's limits until it answers", exc, self.local.share * 100)
