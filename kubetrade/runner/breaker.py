"""Following the exchange client's circuit breaker (``GuardedExchange.on_event``).

Breaker open: no new orders (``HaltSource.BREAKER``) and, once it closes, none but
protective exits until a reconciliation passes (``HaltSource.RECONCILIATION``); an
alert and an audit entry say so. Breaker closed: the orders whose answers the outage
lost are looked up and the runner reconciles (``catch_up``, bound by the runner once
it is built); trading resumes only when that reconciliation finds no mismatch.

Listening starts before the runner restores anything, so a breaker that trips while
the runner starts is reported too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.exchange.base import ExchangeEvent
from kubetrade.logs import get_logger
from kubetrade.runner.halts import HaltBook
from kubetrade.runner.outputs import OutputPort
from kubetrade.state.alerts import AlertKind, Severity

#: Exchange events that are only logged.
LOGGED_EVENTS = frozenset({"order_outcome_unknown", "order_unresolved", "order_resent",
                           "order_recovered", "rate_limited"})


class BreakerWatch:
    """Breaker transitions -> the halt book's exchange gates, alerts and catch-up."""

    def __init__(
        self, name: str, *, halts: HaltBook, outputs: OutputPort, clock: Clock,
        lock: asyncio.Lock,
    ) -> None:
        self.halts = halts
        self.outputs = outputs
        self.clock = clock
        self.lock = lock
        #: Recovery + reconciliation after an outage; set once the runner is built.
        self.catch_up: Callable[[], Awaitable[None]] | None = None
        #: Reactions scheduled by the (synchronous) listener, until they finish.
        self.background: set[asyncio.Task[None]] = set()
        self.log = get_logger("kubetrade.runner", strategy=name, mode=outputs.mode)

    def on_exchange_event(self, event: ExchangeEvent) -> None:
        """Listener for the exchange's events (sync callback: schedules the work)."""
        kind, data = event.kind, event.data or {}
        if kind == "breaker":
            state = str(data.get("to", ""))
            self.outputs.set_breaker(state)
            if state in ("open", "closed"):
                self._spawn(self.on_breaker(state))
        elif kind == "reconciliation_required":
            self.halts.awaiting_reconciliation = True
        elif kind in LOGGED_EVENTS:
            self.log.warning("exchange." + kind, **{k: str(v) for k, v in data.items()})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def on_breaker(self, state: str) -> None:
        """The breaker's new state (``closed``/``half_open``/``open``)."""
        self.outputs.set_breaker(state)
        now = self.clock.now_ms()
        if state == "open" and not self.halts.breaker_open:
            self.halts.breaker_open = True
            self.halts.awaiting_reconciliation = True
            self.log.error("breaker.open")
            await self.outputs.alert(
                AlertKind.CIRCUIT_OPEN, Severity.CRITICAL, "Exchange circuit open",
                "No new orders until the exchange answers and reconciliation passes.", now,
            )
            await self.outputs.audit("breaker.open", {})
        elif state == "closed" and self.halts.breaker_open:
            self.halts.breaker_open = False
            self.log.warning("breaker.closed")
            await self.outputs.audit("breaker.closed", {})
            if self.catch_up is not None:
                async with self.lock:
                    # orders whose answers were lost during the outage are looked up first
                    await self.catch_up()
            if self.halts.awaiting_reconciliation:
                self.log.error("breaker.closed_but_reconciliation_failed")
            else:
                await self.outputs.alert(
                    AlertKind.CIRCUIT_CLOSED, Severity.INFO, "Exchange circuit closed",
                    "Reconciliation passed; trading resumed.", now,
                )
