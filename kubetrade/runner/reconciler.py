"""Reconciliation as the runner runs it: fetch the exchange's balances and open orders,
compare (pure, :func:`kubetrade.runner.reconcile.reconcile`), store and publish the
result, alert and audit a mismatch, and lift the gate a tripped breaker left once a
reconciliation passes.

The baseline (what the account held of each base asset before this strategy first
traded) is read from Redis, or taken once at the first start of a live runner.

A live runner on an account shared with other strategies (``account``: an
``AccountCheck``) leaves the balances to the account's books: every coin on the account
attributed to a strategy or to a foreign fill, an unattributed difference reported once
for the account (``runner/account.py``), never as this strategy's mismatch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import KW_ONLY, InitVar, dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import MarketInfo, Order
from kubetrade.exchange.base import ExchangeClient, ExchangeError, GuardedExchange
from kubetrade.logs import get_logger
from kubetrade.runner.account import AccountCheck
from kubetrade.runner.halts import HaltBook
from kubetrade.runner.outputs import OutputPort
from kubetrade.runner.reconcile import ReconciliationResult, reconcile
from kubetrade.state.alerts import AlertKind, Severity
from kubetrade.state.client import RedisError
from kubetrade.state.events import EventType
from kubetrade.state.schema import ReconciliationBaseline
from kubetrade.state.store import StateStore


@dataclass(eq=False)
class Reconciler:
    """Reconciliation of one strategy with the exchange (see module doc).

    ``local_orders``: the router's live orders; ``client_id_prefix``: the part of a
    client order id shared by this strategy's orders.
    """

    name: str
    symbols: list[str]
    engine: TradingEngine
    _: KW_ONLY
    exchange: ExchangeClient
    markets: dict[str, MarketInfo]
    store: StateStore
    outputs: OutputPort
    halts: HaltBook
    clock: Clock
    local_orders: Callable[[], list[Order]]
    client_id_prefix: InitVar[str]
    account: AccountCheck | None = None
    prefix: str = field(init=False)
    baseline: dict[str, Decimal] = field(default_factory=dict, init=False)
    last: ReconciliationResult | None = field(default=None, init=False)
    foreign_seen: set[str] = field(default_factory=set, init=False)  # foreign order ids reported
    log: Any = field(init=False)

    def __post_init__(self, client_id_prefix: str) -> None:
        self.prefix = client_id_prefix
        self.log = get_logger("kubetrade.runner", strategy=self.name, mode=self.outputs.mode)

    async def load_baseline(self, *, paper: bool) -> None:
        """The stored baseline; else (first start) a live runner's is the account's
        holdings minus its positions, written once. A paper runner has none. A runner
        with account books joins them."""
        if self.account is not None:
            await self.account.join()
        stored = await self.store.read_baseline()
        if stored.holdings:
            self.baseline = dict(stored.holdings)
            return
        baseline: dict[str, Decimal] = {}
        if not paper:
            balances = await self.exchange.fetch_balances()
            for symbol in self.symbols:
                base = self.markets[symbol].base
                bal = balances.get(base)
                pos = self.engine.positions.get(symbol)
                baseline[base] = (bal.total if bal else Decimal(0)) - (
                    pos.quantity if pos else Decimal(0)
                )
        await self.store.write_baseline(ReconciliationBaseline(baseline))
        self.baseline = baseline

    async def run(self, trigger: str) -> ReconciliationResult:
        """Reconcile now: the result is stored, published, counted; a pass lifts the
        reconciliation gates (the runner's and the exchange client's) unless the
        breaker is open; a mismatch is audited and alerted."""
        now = self.clock.now_ms()
        result = await self._compare(trigger, now)
        self.last = result
        data = result.to_dict()
        await self.store.write_reconciliation(data)
        await self.outputs.event(EventType.RECONCILIATION, now, data)
        self.outputs.reconciled(result.mismatch_count, data["status"])
        await self._foreign(result)
        if result.ok:
            await self._passed(trigger)
        elif result.status == "pending":  # other runners' books moved meanwhile
            self.log.info("reconciliation.pending", trigger=trigger)
        else:
            await self._failed(result, trigger, now, data)
        return result

    async def _compare(self, trigger: str, now: int) -> ReconciliationResult:
        try:
            account = None
            if self.account is not None:
                account, balances = await self.account.check(self.exchange.fetch_balances)
            else:
                balances = await self.exchange.fetch_balances()
            free = balances.get(self.engine.portfolio.quote_asset)  # caps entries (allocation)
            self.engine.portfolio.account_free = free.free if free else Decimal(0)
            remote_orders = await self.exchange.fetch_open_orders()
            result = reconcile(
                strategy=self.name, ts_ms=now, trigger=trigger, symbols=self.symbols,
                markets=self.markets, positions=self.engine.positions,
                local_orders=self.local_orders(), balances=balances,
                exchange_orders=remote_orders, baseline=self.baseline,
                client_id_prefix=self.prefix, dust=dict(self.engine.portfolio.dust),
                check_balances=account is None,
            )
            result.account = account.to_dict() if account is not None else None
            return result
        except (ExchangeError, RedisError) as exc:
            return ReconciliationResult(self.name, now, trigger, error=str(exc))

    async def _foreign(self, result: ReconciliationResult) -> None:
        """Orders on the account no kubetrade strategy made, and fills of such orders
        (the account's books flag each once): logged and audited once each (a person
        trades by hand); not a mismatch, trading goes on."""
        new = [o for o in result.foreign if o["client_order_id"] not in self.foreign_seen]
        self.foreign_seen = {o["client_order_id"] for o in result.foreign}
        if new:
            self.log.warning("reconciliation.foreign_orders", orders=new)
            await self.outputs.audit("reconciliation.foreign_orders", {"orders": new})
        trades = (result.account or {}).get("foreign_trades") or []
        if trades:
            self.log.warning("reconciliation.foreign_trades", trades=trades)
            await self.outputs.audit("reconciliation.foreign_trades", {"trades": trades})

    async def _passed(self, trigger: str) -> None:
        if self.account is not None:
            await self.account.books.clear_alert(self.account.assets)
        if isinstance(self.exchange, GuardedExchange) and not self.halts.breaker_open:
            self.exchange.mark_reconciled()
        if self.halts.awaiting_reconciliation and not self.halts.breaker_open:
            self.halts.awaiting_reconciliation = False
            await self.outputs.audit("trading.resumed_after_reconciliation", {"trigger": trigger})
        self.log.info("reconciliation.ok", trigger=trigger)

    async def _failed(
        self, result: ReconciliationResult, trigger: str, now: int, data: dict[str, Any]
    ) -> None:
        self.log.error("reconciliation.mismatch", trigger=trigger, result=data)
        await self.outputs.audit("reconciliation.mismatch", data)
        if result.mismatches:
            await self.outputs.alert(
                AlertKind.RECONCILIATION_MISMATCH,
                Severity.CRITICAL,
                f"Reconciliation mismatch ({self.name})",
                "; ".join(
                    f"{m.kind} {m.subject}: local {m.local}, exchange {m.exchange}"
                    for m in result.mismatches[:5]
                ),
                now,
                data,
            )
        if result.account_status == "mismatch":
            await self._account_alert(result, now, data)

    async def _account_alert(
        self, result: ReconciliationResult, now: int, data: dict[str, Any]
    ) -> None:
        """The account's unattributed difference: alerted once for the account (every
        runner on it sees it), not as this strategy's mismatch."""
        assert self.account is not None and result.account is not None
        each = {d["asset"]: f"{d['asset']}: books {d['expected']}, exchange "
                f"{d['exchange']} ({d['detail']})" for d in result.account["differences"]}
        text = "; ".join(each.values())
        if await self.account.books.first_alert(each):
            await self.outputs.alert(
                AlertKind.RECONCILIATION_MISMATCH, Severity.CRITICAL,
                f"Account {self.account.books.account}: balance nobody's books explain",
                text + ". A person decides: trades made outside kubetrade are flagged "
                "foreign; this is neither (a deposit, a withdrawal, a lost fill?).",
                now, data,
            )

    async def periodic(self, interval_s: float, lock: asyncio.Lock) -> None:
        """Reconcile every ``interval_s`` seconds (under the runner's lock) until
        cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            async with lock:
                await self.run("periodic")
