"""ResilientExchange: retries, circuit breaker, weight throttle and idempotent order
placement around any ExchangeClient (live Binance or the paper broker).

The rules, and why:

- Reads are retried with jittered exponential backoff (tenacity, sleeping on the
  injected clock) on ``TransientError`` only. Auth failures, missing funds, invalid
  orders and unknown symbols will not get better by asking again.
- An order is never blindly re-sent. When the answer to a send is lost
  (``OutcomeUnknown``: timeout, dropped connection, 5xx), the order is looked up by its
  client order id first. Only when the exchange has confirmed twice, some time apart,
  that it never saw the id is it sent again under the *same* id; a ``DuplicateOrder``
  on that send proves it exists after all, so we look it up again. Binance lets a
  closed order's client id be reused, so the exchange alone cannot be trusted to
  catch a second copy: the look-up must come first.
- A circuit breaker trips after N consecutive failures. While it is open nothing is
  sent (reads fail fast with ``CircuitOpen``, orders too); after a cool-down one read
  probes; an order is never the probe. Once it has tripped, new orders stay refused
  until the runner has reconciled with the exchange and calls ``mark_reconciled()``.
- A weight-based token bucket keeps us under Binance's per-minute budget; a 429/418
  ``Retry-After`` pauses every call until it has passed.
- With a shared ``RateBudget`` (Redis, wired by the runner's assembly), every call also
  spends from the IP's weight window and every order from the account's order windows,
  shared with every other client; closing orders (stop-loss, close-all) may use the
  reserve entries may not; the exchange's header counts correct the shared count; a
  Retry-After pauses every client; Redis down: a local share, logged.

Every state change is reported to ``on_event`` (the runner makes alerts and metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Balance, Candle, Fill, MarketInfo, Order, OrderStatus
from kubetrade.exchange.base import (
    CircuitOpen,
    DuplicateOrder,
    ExchangeClient,
    ExchangeError,
    ExchangeEvent,
    GuardedExchange,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from kubetrade.exchange.breaker import (
    BreakerPolicy,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
)
from kubetrade.exchange.ratelimit import (
    CLOSING_REASONS,
    KIND_ORDERS,
    KIND_WEIGHT,
    WEIGHTS,
    BudgetGate,
    RateBudget,
    WeightLimiter,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def _retryable(e: BaseException) -> bool:
    return isinstance(e, TransientError) and not isinstance(e, OutcomeUnknown)


class ResilientExchange(GuardedExchange):
    """ExchangeClient wrapper (and ``GuardedExchange``); see the module docstring for the
    rules."""

    def __init__(
        self,
        inner: ExchangeClient,
        clock: Clock,
        *,
        on_event: Callable[[ExchangeEvent], None] | None = None,
        read_attempts: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        weight_limit_per_minute: int = 6000,
        weight_budget: float = 0.8,
        rate_limit_enabled: bool = True,
        default_retry_after_s: float = 60.0,
        lookup_attempts: int = 8,
        not_found_confirm_s: float = 2.0,
        budget: RateBudget | None = None,
        budget_local_share: float = 0.1,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.on_event = on_event
        self.read_attempts = read_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.default_retry_after_s = default_retry_after_s
        self.lookup_attempts = lookup_attempts
        self.not_found_confirm_s = not_found_confirm_s
        self.breaker = CircuitBreaker(
            clock, BreakerPolicy(failure_threshold, cooldown_s), self._on_breaker
        )
        self.limiter = WeightLimiter(
            clock, weight_limit_per_minute, weight_budget, on_pause=self._on_pause
        )
        self.rate_limit_enabled = rate_limit_enabled
        self.needs_reconciliation = False
        self._bypass_reconciliation = 0
        self.on_reconciliation_required: Callable[[], None] | None = None
        self.gate = BudgetGate(budget, clock, local_share=budget_local_share) if budget else None
        if hasattr(inner, "on_weight"):  # BinanceExchange reports X-MBX-USED-WEIGHT-1M
            setattr(inner, "on_weight", self._on_weight)  # noqa: B010
        if hasattr(inner, "on_order_count"):  # ... and X-MBX-ORDER-COUNT-10S
            setattr(inner, "on_order_count", self._on_order_count)  # noqa: B010

    def _on_weight(self, used: int) -> None:
        self.limiter.observe_used_weight(used)
        if self.gate is not None:
            self.gate.note(KIND_WEIGHT, used)

    def _on_order_count(self, used: int) -> None:
        if self.gate is not None:
            self.gate.note(KIND_ORDERS, used)

    async def _spend(self, op: str, weight: int | None, is_order: bool, priority: bool) -> None:
        """The call's weight (and an order's count) from the budgets, waiting as needed."""
        w = weight if weight is not None else WEIGHTS.get(op, 1)
        if self.gate is not None:
            await self.gate.spend(KIND_WEIGHT, w, priority=priority)
            if is_order:
                await self.gate.spend(KIND_ORDERS, 1, priority=priority)
        await self.limiter.acquire(w)

    # ---- events ---------------------------------------------------------------------
    def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(ExchangeEvent(kind, self.clock.now_ms(), data))
        except Exception:  # a broken listener must not break trading
            log.exception("exchange event listener failed on %s", kind)

    def _on_breaker(self, t: BreakerTransition) -> None:
        log.warning("exchange circuit breaker %s -> %s: %s", t.old, t.new, t.reason)
        self._emit("breaker", **{"from": t.old.value, "to": t.new.value, "reason": t.reason,
                                 "failures": t.failures})
        if t.new is BreakerState.OPEN and not self.needs_reconciliation:
            self.require_reconciliation(f"circuit breaker opened: {t.reason}")

    def _on_pause(self, seconds: float) -> None:
        self._emit("rate_limited", retry_after=seconds)

    def require_reconciliation(self, reason: str) -> None:
        """Refuse new orders until ``mark_reconciled()`` (the runner's reconciliation)."""
        self.needs_reconciliation = True
        self._emit("reconciliation_required", reason=reason)
        if self.on_reconciliation_required is not None:
            self.on_reconciliation_required()

    def mark_reconciled(self) -> None:
        """The runner compared its state with the exchange's: orders may flow again."""
        if self.needs_reconciliation:
            self.needs_reconciliation = False
            self._emit("reconciled")

    @property
    def trading_allowed(self) -> bool:
        return self.breaker.state is BreakerState.CLOSED and not self.needs_reconciliation

    # ---- one guarded call -------------------------------------------------------------
    async def _once(self, op: str, fn: Callable[[], Awaitable[_T]], *, is_order: bool = False,
                    weight: int | None = None, priority: bool = False) -> _T:
        if not self.breaker.allow(probe_ok=not is_order):
            raise CircuitOpen(
                f"exchange circuit breaker is {self.breaker.state.value}; {op} refused "
                f"(next probe in {self.breaker.retry_in_s:.0f} s)"
            )
        try:
            if self.rate_limit_enabled:
                await self._spend(op, weight, is_order, priority)
            result = await fn()
        except RateLimited as e:
            self.breaker.release_probe()
            pause = e.retry_after if e.retry_after is not None else self.default_retry_after_s
            self.limiter.pause(pause)
            if self.gate is not None:
                await self.gate.pause(pause)
                await self.gate.flush()
            raise
        except TransientError as e:
            self.breaker.record_failure(f"{op}: {type(e).__name__}")
            raise
        except ExchangeError:
            self.breaker.record_success()  # it answered: the connection is fine
            raise
        except BaseException:
            self.breaker.release_probe()
            raise
        self.breaker.record_success()
        if self.gate is not None:
            await self.gate.flush()
        return result

    async def _read(self, op: str, fn: Callable[[], Awaitable[_T]],
                    weight: int | None = None) -> _T:
        async def before_sleep(state: Any) -> None:
            err = state.outcome.exception() if state.outcome else None
            self._emit("retry", op=op, attempt=state.attempt_number, error=type(err).__name__)

        retrying = AsyncRetrying(
            sleep=self.clock.sleep,
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_initial_s, max=self.backoff_max_s,
                                         jitter=self.backoff_initial_s),
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(op, fn, weight=weight)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- reads ----------------------------------------------------------------------------
    async def load_markets(self) -> dict[str, MarketInfo]:
        return await self._read("load_markets", self.inner.load_markets)

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        return await self._read(
            "fetch_candles", lambda: self.inner.fetch_candles(symbol, timeframe, since_ms, limit)
        )

    async def fetch_last_price(self, symbol: str) -> Decimal:
        return await self._read("fetch_last_price", lambda: self.inner.fetch_last_price(symbol))

    async def fetch_balances(self) -> dict[str, Balance]:
        return await self._read("fetch_balances", self.inner.fetch_balances)

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        return await self._read(
            "fetch_order", lambda: self.inner.fetch_order(client_order_id, symbol)
        )

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        op = "fetch_open_orders" if symbol else "fetch_open_orders_all"
        return await self._read(op, lambda: self.inner.fetch_open_orders(symbol))

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        return await self._read("fetch_fills", lambda: self.inner.fetch_fills(symbol, since_ms))

    async def server_time_ms(self) -> int:
        return await self._read("server_time_ms", self.inner.server_time_ms)

    async def probe(self) -> bool:
        """One cheap call through the breaker (lets a due half-open probe run)."""
        try:
            await self._once("server_time_ms", self.inner.server_time_ms)
        except ExchangeError:
            return False
        return True

    async def api_restrictions(self) -> dict[str, Any]:
        fn = getattr(self.inner, "api_restrictions", None)
        if fn is None:
            raise ExchangeError(f"{self.name} cannot report API key restrictions")
        result: dict[str, Any] = await self._read("api_restrictions", fn)
        return result

    fetch_api_restrictions = api_restrictions

    # ---- writes -------------------------------------------------------------------------
    async def cancel_order(self, client_order_id: str, symbol: str) -> Order:
        # cancelling twice is harmless (-2011 / OrderNotFound), so transient failures retry
        return await self._read(
            "cancel_order", lambda: self.inner.cancel_order(client_order_id, symbol)
        )

    async def cancel_all_orders(self, symbol: str) -> list[Order]:
        fn = getattr(self.inner, "cancel_all_orders", None)
        if fn is None:
            out = []
            for o in await self.fetch_open_orders(symbol):
                out.append(await self.cancel_order(o.client_order_id, symbol))
            return out
        result: list[Order] = await self._read("cancel_all_orders", lambda: fn(symbol))
        return result

    @contextmanager
    def allow_unreconciled(self) -> Iterator[None]:
        """Let orders out while reconciliation is pending (emergency close-all exits);
        the breaker must still be closed: nothing is sent to an exchange that is down."""
        self._bypass_reconciliation += 1
        try:
            yield
        finally:
            self._bypass_reconciliation -= 1

    def _check_can_trade(self, order: Order) -> None:
        if self.needs_reconciliation and not self._bypass_reconciliation:
            raise CircuitOpen(
                f"order {order.client_order_id} refused: reconciliation with the exchange is "
                "required before trading resumes"
            )
        if self.breaker.state is not BreakerState.CLOSED:
            raise CircuitOpen(
                f"order {order.client_order_id} refused: exchange circuit breaker is "
                f"{self.breaker.state.value}"
            )

    async def create_order(self, order: Order) -> Order:
        """Send once; on a lost answer, find out what happened before anything else.

        Raises ``OutcomeUnknown`` (with ``order.status`` set to UNKNOWN) only when the
        exchange could not be asked within ``lookup_attempts``; the runner keeps the
        order as UNKNOWN and resolves it with ``resolve_order`` / reconciliation.
        """
        self._check_can_trade(order)
        closing = order.reason in CLOSING_REASONS  # priority when the budget is short
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._once("create_order", lambda: self.inner.create_order(order),
                                        is_order=True, priority=closing)
            except OutcomeUnknown as e:
                order.status = OrderStatus.UNKNOWN
                self._emit("order_outcome_unknown", client_order_id=order.client_order_id,
                           error=str(e)[:200])
                return await self._recover(order, e)
            except DuplicateOrder:
                # the id is taken: this very order reached the exchange earlier
                found = await self._lookup(order)
                if found is not None:
                    self._emit("order_recovered", client_order_id=order.client_order_id,
                               status=found.status.value)
                    return found
                raise
            except TransientError:
                # 429/418 or -1021: Binance refused it before execution. Still, nothing is
                # sent twice on faith: look it up (after the pause / time re-sync) first.
                if attempts >= 3:
                    raise
                found = await self._lookup(order)
                if found is not None:
                    self._emit("order_recovered", client_order_id=order.client_order_id,
                               status=found.status.value)
                    return found
                self._check_can_trade(order)

    async def _lookup(self, order: Order) -> Order | None:
        """fetch_order that waits out transient trouble and an open breaker."""
        last: Exception | None = None
        for i in range(self.lookup_attempts):
            try:
                return await self._once(
                    "fetch_order",
                    lambda: self.inner.fetch_order(order.client_order_id, order.symbol),
                )
            except CircuitOpen as e:
                last = e
                await self.clock.sleep(max(self.breaker.retry_in_s, self.backoff_initial_s))
            except TransientError as e:
                last = e
                await self.clock.sleep(min(self.backoff_max_s, self.backoff_initial_s * 2**i))
        raise OutcomeUnknown(
            f"order {order.client_order_id}: exchange unreachable while looking it up "
            f"({type(last).__name__ if last else 'unknown'})"
        )

    async def _recover(self, order: Order, cause: Exception) -> Order:
        not_found = 0
        for _ in range(self.lookup_attempts):
            try:
                found = await self._lookup(order)
            except OutcomeUnknown:
                break
            if found is not None:
                self._emit("order_recovered", client_order_id=order.client_order_id,
                           status=found.status.value)
                return found
            not_found += 1
            if not_found < 2:
                # Binance may not list an order it is still processing: ask again later
                await self.clock.sleep(self.not_found_confirm_s)
                continue
            # confirmed absent twice: it never arrived. Same id again, so a late copy
            # of the first request still cannot make a second order while it is open.
            if self.breaker.state is not BreakerState.CLOSED:
                await self.clock.sleep(max(self.breaker.retry_in_s, self.backoff_initial_s))
                not_found = 0
                continue
            try:
                placed = await self._once("create_order",
                                          lambda: self.inner.create_order(order),
                                          is_order=True)
            except (OutcomeUnknown, DuplicateOrder, RateLimited, CircuitOpen):
                not_found = 0
                continue
            self._emit("order_resent", client_order_id=order.client_order_id,
                       status=placed.status.value)
            return placed
        order.status = OrderStatus.UNKNOWN
        self._emit("order_unresolved", client_order_id=order.client_order_id)
        raise OutcomeUnknown(
            f"order {order.client_order_id}: outcome still unknown after "
            f"{self.lookup_attempts} look-ups; reconcile before trading ({cause})"
        )

    async def resolve_order(self, order: Order) -> Order | None:
        """What the exchange knows of an order persisted as CREATED/UNKNOWN (e.g. after a
        restart): the exchange's view, or None if it never arrived. Never sends."""
        return await self._lookup(order)

    async def close(self) -> None:
        await self.inner.close()
