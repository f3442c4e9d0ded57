"""BreakerWatch: the exchange's breaker events set the halt book's gates, say so once,
and after the breaker closes the runner catches up under its lock; trading resumes
(and the all-clear goes out) only when that catch-up's reconciliation passed."""

from __future__ import annotations

import asyncio
from typing import Any

from kubetrade.domain.clock import ManualClock
from kubetrade.exchange.base import ExchangeEvent
from kubetrade.runner.breaker import BreakerWatch
from kubetrade.runner.halts import HaltBook
from kubetrade.state.alerts import AlertKind, Severity


class Recorded:
    """An output port that remembers what it was told (only what BreakerWatch uses)."""

    name = "s"
    mode = "live"

    def __init__(self) -> None:
        self.said: list[str] = []
        self.breaker: list[str] = []

    async def audit(self, action: str, detail: dict[str, Any]) -> None:
        self.said.append(f"audit {action}")

    async def alert(self, kind: AlertKind, severity: Severity, title: str, text: str,
                    ts_ms: int, data: dict[str, Any] | None = None) -> None:
        self.said.append(f"alert {kind.value}")

    def set_breaker(self, state: str) -> None:
        self.breaker.append(state)


def _watch() -> tuple[BreakerWatch, HaltBook, Recorded]:
    halts, out = HaltBook(), Recorded()
    watch = BreakerWatch("s", halts=halts, outputs=out, clock=ManualClock(0),  # type: ignore[arg-type]
                         lock=asyncio.Lock())
    return watch, halts, out


async def _settle(watch: BreakerWatch) -> None:
    await asyncio.wait_for(asyncio.gather(*list(watch.background)), 5)


def breaker(to: str) -> ExchangeEvent:
    return ExchangeEvent("breaker", 0, {"to": to})


async def test_open_holds_orders_and_says_so_once() -> None:
    watch, halts, out = _watch()
    watch.on_exchange_event(breaker("open"))
    await _settle(watch)
    watch.on_exchange_event(breaker("open"))
    await _settle(watch)
    assert halts.breaker_open and halts.awaiting_reconciliation
    assert out.said == ["alert circuit_open", "audit breaker.open"]
    assert out.breaker == ["open", "open", "open", "open"]


async def test_closed_catches_up_under_the_lock_and_resumes_when_it_passed() -> None:
    watch, halts, out = _watch()
    seen: list[bool] = []

    async def catch_up() -> None:
        seen.append(watch.lock.locked())
        halts.awaiting_reconciliation = False  # its reconciliation passed

    watch.catch_up = catch_up
    watch.on_exchange_event(breaker("open"))
    await _settle(watch)
    watch.on_exchange_event(breaker("half_open"))
    watch.on_exchange_event(breaker("closed"))
    await _settle(watch)
    assert seen == [True]
    assert not halts.breaker_open and not halts.awaiting_reconciliation
    assert out.said[-2:] == ["audit breaker.closed", "alert circuit_closed"]


async def test_closed_with_a_failed_reconciliation_keeps_entries_held() -> None:
    watch, halts, out = _watch()

    async def catch_up() -> None:  # reconciliation found a mismatch: nothing lifted
        return None

    watch.catch_up = catch_up
    watch.on_exchange_event(breaker("open"))
    await _settle(watch)
    watch.on_exchange_event(breaker("closed"))
    await _settle(watch)
    assert not halts.breaker_open and halts.awaiting_reconciliation
    assert "alert circuit_closed" not in out.said


async def test_reconciliation_required_holds_entries() -> None:
    watch, halts, _ = _watch()
    watch.on_exchange_event(ExchangeEvent("reconciliation_required", 0, {"reason": "x"}))
    assert halts.awaiting_reconciliation and not halts.breaker_open
    assert not watch.background
