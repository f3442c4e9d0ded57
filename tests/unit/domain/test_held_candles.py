"""TradingEngine.on_held_candles does for quiet candles of a held position exactly what
on_candle does: same equity after each, same halts and events, same snapshot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Side
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker
from tests.unit.domain._helpers import BTC, MIN, T0, Scripted, candle, markets, step

# a slide from 100 to 90 and back up: the drawdown (0.5 %) and daily-loss (1 %) halts
# fire inside the run, and new peaks come after it
CLOSES = [100 - i * 0.25 for i in range(40)] + [90 + i * 0.5 for i in range(30)]


def _engine(**limits: Any) -> tuple[TradingEngine, PaperBroker]:
    m = markets(BTC)
    eng = TradingEngine("t", Scripted({0: Side.BUY}), RiskLimits(**limits), m,
                        Decimal(10_000), timeframe_ms=MIN)
    return eng, PaperBroker(m, {"USDT": Decimal(10_000)}, slippage_bps=Decimal(0))


def _without_strategy(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k != "strategy"}


@pytest.mark.parametrize("limits", [
    {"stop_loss_pct": Decimal(0), "max_drawdown_pct": Decimal("0.5")},
    {"stop_loss_pct": Decimal(0), "daily_loss_limit_pct": Decimal(1)},
    {"stop_loss_pct": Decimal(0), "max_drawdown_pct": Decimal(0)},
])
def test_held_candles_in_bulk_are_what_on_candle_makes(limits: dict[str, Any]) -> None:
    slow, slow_broker = _engine(**limits)
    fast, fast_broker = _engine(**limits)
    for eng, broker in ((slow, slow_broker), (fast, fast_broker)):
        step(eng, broker, BTC, candle(0, 100))
        assert eng.positions and not eng.open_orders
    rest = [candle(i, c) for i, c in enumerate(CLOSES[1:], start=1)]
    expected = []
    for c in rest:
        step(slow, slow_broker, BTC, c)
        expected.append(slow.equity)
    got = fast.on_held_candles(BTC, [c.ts_ms for c in rest], [c.close for c in rest])
    assert got == expected
    assert fast.halts.keys() == slow.halts.keys()
    assert bool(slow.halts) == any(limits.values())
    assert [e.to_dict() for e in fast.drain_events()] == [
        e.to_dict() for e in slow.drain_events()]
    assert _without_strategy(fast.snapshot()) == _without_strategy(slow.snapshot())


def test_what_the_held_path_cannot_take_is_refused() -> None:
    eng, broker = _engine(stop_loss_pct=Decimal(0))
    with pytest.raises(ValueError, match="held path"):  # nothing held yet
        eng.on_held_candles(BTC, [T0], [Decimal(100)])
    step(eng, broker, BTC, candle(0, 100))
    day_end = (T0 // 86_400_000 + 1) * 86_400_000
    with pytest.raises(ValueError, match="held path"):  # closes into the next UTC day
        eng.on_held_candles(BTC, [day_end - MIN // 2], [Decimal(100)])
    with pytest.raises(ValueError, match="not newer"):
        eng.on_held_candles(BTC, [T0], [Decimal(100)])
    assert eng.on_held_candles(BTC, [], []) == []
