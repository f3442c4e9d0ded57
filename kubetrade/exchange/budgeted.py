"""The shared rate budgets for processes that call the exchange a few times and need no
breaker, retries or order recovery (issue 15 item 2: "and the operator's and API's
exchange calls"): the pre-flight Job the operator starts, and ``kubetrade preflight``.

Neither the operator nor the API calls the exchange itself (they hold no exchange
keys; the operator's exchange calls are its pre-flight Jobs'). ``BudgetedExchange``
wraps an exchange adapter: every coroutine method spends its request weight (and a new
order its order count) from the same Redis budgets the runners spend from
(``BudgetGate`` over ``state.budgets.RedisBudget``) before the call, passes the
exchange's header counts on after it, and a 429/418's Retry-After pauses every client
of the IP. Other attributes pass through untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from kubetrade.exchange.base import RateLimited
from kubetrade.exchange.ratelimit import KIND_ORDERS, KIND_WEIGHT, WEIGHTS, BudgetGate

#: Weight of a call not in ``WEIGHTS`` (Binance's cheapest endpoints cost 1-2; an
#: unknown call is counted as a dearer one).
UNKNOWN_WEIGHT = 10
#: Retry-After assumed when a 429/418 names none (seconds).
DEFAULT_PAUSE_S = 60.0


def weight_of(method: str) -> int:
    """Binance request weight of an adapter method (``fetch_api_restrictions`` ->
    ``api_restrictions``)."""
    return WEIGHTS.get(method, WEIGHTS.get(method.removeprefix("fetch_"), UNKNOWN_WEIGHT))


class BudgetedExchange:
    """``inner``'s calls through the shared budget ``gate`` (see the module doc)."""

    def __init__(self, inner: Any, gate: BudgetGate) -> None:
        self.inner = inner
        self.gate = gate
        if hasattr(inner, "on_weight"):  # X-MBX-USED-WEIGHT-1M
            inner.on_weight = lambda used: gate.note(KIND_WEIGHT, used)
        if hasattr(inner, "on_order_count"):  # X-MBX-ORDER-COUNT-10S
            inner.on_order_count = lambda used: gate.note(KIND_ORDERS, used)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name == "close" or not inspect.iscoroutinefunction(attr):
            return attr
        return self._spending(name, attr)

    def _spending(self, name: str, call: Callable[..., Awaitable[Any]]) -> Any:
        async def spent(*args: Any, **kwargs: Any) -> Any:
            await self.gate.spend(KIND_WEIGHT, weight_of(name), priority=False)
            if name == "create_order":
                await self.gate.spend(KIND_ORDERS, 1, priority=False)
            try:
                return await call(*args, **kwargs)
            except RateLimited as exc:
                await self.gate.pause(exc.retry_after or DEFAULT_PAUSE_S)
                raise
            finally:
                await self.gate.flush()

        return spent
