"""Following the exchange client's circuit breaker (``GuardedExchange.on_event``).

Breaker open: no new orders (``HaltSource.BREAKER``) and, once it closes, none but
protective exits until a reconciliation passes (``HaltSource.RECONCILIATION``); an
alert and an audit entry say so. Breaker closed: the orders whose answers the outage
lost are looked up and the runner reconciles (``catch_up``, bound by the runner once
it is built); trading resumes only when that reconciliation finds no mismatch.

Listening starts before the runner restores anything, so a breaker that trips while
the runner starts is reported too.

The account (issue 15 item 1): every live runner on one exchange account follows the
account's circuit in Redis (``AccountBooks.set_breaker``). A runner whose breaker
opens marks the account open; before each candle every other runner of the account
reads it (``follow_account``) and holds as if its own breaker had opened. The runner
that tripped it marks it closed once its own breaker closed and its reconciliation
passed; the others then reconcile and resume, each only if its reconciliation passes
(unattributed account differences keep them held: that is for a person). A trip left
open by a runner that never came back is lifted by another runner of the account after
``ACCOUNT_TRIP_STALE_MS``, through the same reconciliation.
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
from kubetrade.state.accounts import AccountBooks
from kubetrade.state.alerts import AlertKind, Severity
from kubetrade.state.client import RedisError

#: Exchange events that are only logged.
LOGGED_EVENTS = frozenset({"order_outcome_unknown", "order_unresolved", "order_resent",
                           "order_recovered", "rate_limited"})
#: An account trip older than this, not lifted by the runner that made it, is lifted
#: by any runner of the account whose own breaker is closed and reconciliation passes.
ACCOUNT_TRIP_STALE_MS = 120_000


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
        self.name = name
        #: The account's shared books (live); set once the runner is built.
        self.account: AccountBooks | None = None
        self.own_open = False  # this runner's exchange breaker
        self.account_held = False  # held by another runner's trip of the account
        self.released = False  # a stale trip let go: this runner lifts it once it passes
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
        if state == "open":
            self.own_open = True
            await self._mark_account("open", now)
        if state == "open" and not self.halts.breaker_open:
            self.halts.breaker_open = True
            self.halts.awaiting_reconciliation = True
            self.log.error("breaker.open")
            await self.outputs.alert(
                AlertKind.CIRCUIT_OPEN, Severity.CRITICAL, "Exchange circuit open",
                "No new orders until the exchange answers and reconciliation passes.", now,
            )
            await self.outputs.audit("breaker.open", {})
        elif state == "closed" and self.own_open:
            self.own_open = False
            self.halts.breaker_open = self.account_held
            self.log.warning("breaker.closed")
            await self.outputs.audit("breaker.closed", {})
            if self.catch_up is not None:
                async with self.lock:
                    # orders whose answers were lost during the outage are looked up first
                    await self.catch_up()
            if self.account_held:  # another runner's trip of the account still holds it
                self.log.warning("breaker.closed_account_still_open")
            elif self.halts.awaiting_reconciliation:
                self.log.error("breaker.closed_but_reconciliation_failed")
            else:
                await self._mark_account("closed", now)
                await self.outputs.alert(
                    AlertKind.CIRCUIT_CLOSED, Severity.INFO, "Exchange circuit closed",
                    "Reconciliation passed; trading resumed.", now,
                )

    async def _mark_account(self, state: str, now: int) -> None:
        """Mark the account's circuit (a Redis error is logged: each runner's own
        breaker still guards it)."""
        if self.account is None:
            return
        try:
            await self.account.set_breaker(state, self.name, now)
        except RedisError as exc:
            self.log.warning("breaker.account_unmarked", state=state, error=str(exc))

    async def follow_account(self) -> None:
        """Before each candle: follow the account's circuit (see the module doc)."""
        if self.account is None:
            return
        try:
            state = await self.account.breaker()
        except RedisError:
            return  # unknown: as it was
        now = self.clock.now_ms()
        by = state.get("by", "")
        if state.get("state") != "open" or by == self.name:
            if self.account_held:
                self.account_held = False
                self.halts.breaker_open = self.own_open  # reconciliation still pending
                await self.outputs.audit("breaker.account_closed", {"by": by})
            self.released = False
        elif not self.account_held and not self.released:
            self.account_held = True
            self.halts.breaker_open = self.halts.awaiting_reconciliation = True
            self.log.error("breaker.account_open", by=by)
            await self.outputs.audit("breaker.account_open", {"by": by})
        elif self.account_held and now - int(state.get("since_ms") or 0) > ACCOUNT_TRIP_STALE_MS:
            self.account_held, self.released = False, True
            self.halts.breaker_open = self.own_open
            self.log.warning("breaker.account_trip_stale", by=by)
        elif self.released and not self.halts.awaiting_reconciliation and not self.own_open:
            self.released = False
            await self._mark_account("closed", now)
            await self.outputs.audit("breaker.account_resumed", {"tripped_by": by})
