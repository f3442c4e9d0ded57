"""Reconciler without servers: a pass lifts the runner's gate and the exchange's
(``GuardedExchange.mark_reconciled``) unless the breaker is still open; a mismatch is
audited and alerted and lifts nothing; an exchange that cannot answer is an error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Balance
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.base import ExchangeError, ExchangeEvent, GuardedExchange
from kubetrade.exchange.paper import default_market
from kubetrade.runner.halts import HaltBook
from kubetrade.runner.reconciler import Reconciler
from kubetrade.state.alerts import AlertKind, Severity
from kubetrade.state.events import EventType
from tests.fakes.null_exchange import NullExchange

SYMBOL = "BTC/USDT"


class Guarded(NullExchange):
    """Balances as set; counts ``mark_reconciled``."""

    def __init__(self, btc: Decimal | None) -> None:
        self.btc = btc
        self.marked = 0
        self.on_event: Any = None

    async def fetch_balances(self) -> dict[str, Balance]:
        if self.btc is None:
            raise ExchangeError("down")
        return {"BTC": Balance("BTC", self.btc, Decimal(0))}

    async def probe(self) -> bool:
        return True

    def mark_reconciled(self) -> None:
        self.marked += 1

    @contextlib.contextmanager
    def allow_unreconciled(self) -> Iterator[None]:
        yield


class Recorded:
    name = "s"
    mode = "live"

    def __init__(self) -> None:
        self.said: list[str] = []

    async def audit(self, action: str, detail: dict[str, Any]) -> None:
        self.said.append(f"audit {action}")

    async def alert(self, kind: AlertKind, severity: Severity, title: str, text: str,
                    ts_ms: int, data: dict[str, Any] | None = None) -> None:
        self.said.append(f"alert {kind.value}")

    async def event(self, kind: EventType, ts_ms: int, data: dict[str, Any]) -> None:
        self.said.append(f"event {kind.value} {data['status']}")

    def reconciled(self, mismatches: int, outcome: str) -> None:
        self.said.append(f"count {outcome} {mismatches}")


class Store:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def write_reconciliation(self, result: dict[str, Any]) -> None:
        self.written.append(result)


def _reconciler(exchange: Guarded) -> tuple[Reconciler, HaltBook, Recorded, Store]:
    markets = {SYMBOL: default_market(SYMBOL)}
    engine = TradingEngine("s", create_algorithm("sma-crossover", {}), RiskLimits(), markets,
                           Decimal(1000))
    halts, out, store = HaltBook(), Recorded(), Store()
    rec = Reconciler("s", [SYMBOL], engine, exchange=exchange, markets=markets,
                     store=store, outputs=out, halts=halts,  # type: ignore[arg-type]
                     clock=ManualClock(5), local_orders=list, client_id_prefix="kt-s-")
    rec.baseline = {"BTC": Decimal(2)}
    return rec, halts, out, store


def test_the_fake_is_a_guarded_exchange() -> None:
    assert isinstance(Guarded(None), GuardedExchange)
    assert not isinstance(NullExchange(), GuardedExchange)
    assert ExchangeEvent("x", 0).data == {}


async def test_pass_lifts_both_gates() -> None:
    exchange = Guarded(Decimal(2))
    rec, halts, out, store = _reconciler(exchange)
    halts.awaiting_reconciliation = True
    result = await rec.run("breaker_closed")
    assert result.ok and rec.last is result and store.written == [result.to_dict()]
    assert exchange.marked == 1 and not halts.awaiting_reconciliation
    assert out.said == ["event reconciliation ok", "count ok 0",
                        "audit trading.resumed_after_reconciliation"]


async def test_pass_while_the_breaker_is_open_lifts_nothing() -> None:
    exchange = Guarded(Decimal(2))
    rec, halts, _, _ = _reconciler(exchange)
    halts.breaker_open = halts.awaiting_reconciliation = True
    assert (await rec.run("periodic")).ok
    assert exchange.marked == 0 and halts.awaiting_reconciliation


async def test_mismatch_is_audited_and_alerted() -> None:
    exchange = Guarded(Decimal(3))  # a coin more than the baseline: a deposit
    rec, halts, out, _ = _reconciler(exchange)
    halts.awaiting_reconciliation = True
    result = await rec.run("start")
    assert [m.kind for m in result.mismatches] == ["balance"]
    assert exchange.marked == 0 and halts.awaiting_reconciliation
    assert out.said[-2:] == ["audit reconciliation.mismatch", "alert reconciliation_mismatch"]


async def test_exchange_that_cannot_answer_is_an_error_not_a_pass() -> None:
    rec, _, out, _ = _reconciler(Guarded(None))
    result = await rec.run("start")
    assert result.error == "down" and not result.ok
    assert "alert reconciliation_mismatch" not in out.said
    assert out.said[:2] == ["event reconciliation error", "count error 0"]
