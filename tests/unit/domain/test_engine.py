"""Engine behaviour users rely on: idempotent fills, deterministic ids, crash recovery."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Fill, OrderStatus, Side, make_client_order_id
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import bundled_candles, load_candles, run_replay

from ._helpers import BTC, MIN, T0, candle, make, step

B, S = Side.BUY, Side.SELL


def test_orders_are_created_with_deterministic_client_ids() -> None:
    eng, broker = make({1: B})
    step(eng, broker, BTC, candle(0, 100))
    broker.on_candle(BTC, candle(1, 100))
    [order] = eng.on_candle(BTC, candle(1, 100))
    assert order.status is OrderStatus.CREATED
    # decided at the candle's close (open + the 1m interval seen between candles)
    assert order.client_order_id == make_client_order_id("test", T0 + 2 * MIN, 0)
    assert order.type == "market" and order.reason == "signal"


def test_on_fill_is_idempotent_on_trade_id() -> None:
    eng, broker = make({0: B, 1: S})
    _, fills = step(eng, broker, BTC, candle(0, 100))
    cash = eng.portfolio.cash
    assert eng.on_fill(fills[0]) == []
    assert eng.portfolio.cash == cash
    _, fills = step(eng, broker, BTC, candle(1, 110))
    assert eng.summary()["trades"] == 1
    assert eng.on_fill(fills[0]) == []
    assert eng.summary()["trades"] == 1


def test_rejected_order_is_audited_and_forgotten() -> None:
    eng, broker = make({0: B})
    broker.on_candle(BTC, candle(0, 100))
    [order] = eng.on_candle(BTC, candle(0, 100))
    order.status = OrderStatus.REJECTED
    order.reason = "insufficient_funds"
    eng.on_order_update(order)
    assert eng.open_orders == []
    assert any(e.action == "order_rejected" for e in eng.drain_events())


def test_candle_redelivered_after_reconnect_is_ignored() -> None:
    eng, broker = make({0: B, 1: B})
    step(eng, broker, BTC, candle(0, 100))
    assert eng.on_candle(BTC, candle(0, 100)) == []
    assert len(eng.strategy.seen) == 1  # type: ignore[attr-defined]


def test_unknown_symbol_is_a_clear_error() -> None:
    eng, _ = make({})
    with pytest.raises(ValueError, match=r"DOGE/USDT.*known"):
        eng.on_candle("DOGE/USDT", candle(0, 1))


def test_summary_fields() -> None:
    eng, broker = make({0: B, 1: S})
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 120))
    s = eng.summary()
    assert {"equity", "pnl", "trades", "win_rate", "open_positions", "phase"} <= set(s)
    assert s["trades"] == 1 and s["win_rate"] == 1.0 and s["open_positions"] == 0
    assert Decimal(s["pnl"]) > 0
    json.dumps(s)


def _replay_engine() -> tuple[TradingEngine, PaperBroker, list]:  # type: ignore[type-arg]
    path = bundled_candles(BTC, "1m")
    assert path is not None
    candles = load_candles(path)
    m = {BTC: default_market(BTC)}
    eng = TradingEngine("sma", create_algorithm("sma-crossover", {"fastPeriod": 5,
                                                                 "slowPeriod": 20}),
                        RiskLimits(strategy_max_consecutive_losses=0), m, Decimal(10000))
    broker = PaperBroker(m, {"USDT": Decimal(10000)})
    return eng, broker, candles


def test_snapshot_restore_after_crash_continues_exactly_like_an_uninterrupted_run() -> None:
    eng, broker, candles = _replay_engine()
    full = run_replay(eng, broker, candles, ManualClock())

    eng2, broker2, _ = _replay_engine()
    cut = 700
    first = run_replay(eng2, broker2, candles[:cut], ManualClock())
    # "SIGKILL": only the JSON snapshots survive
    snap = json.loads(json.dumps(eng2.snapshot()))
    bsnap = json.loads(json.dumps(broker2.snapshot()))
    strategy = create_algorithm("sma-crossover", {"fastPeriod": 5, "slowPeriod": 20})
    eng3 = TradingEngine.restore(snap, strategy)
    broker3 = PaperBroker({BTC: default_market(BTC)}, {})
    broker3.restore(bsnap)
    second = run_replay(eng3, broker3, candles[cut:], ManualClock(), symbol=BTC)
    assert first.trades + second.trades == full.trades
    assert eng3.summary() == eng.summary()
    assert [o.client_order_id for o in first.orders + second.orders] == [
        o.client_order_id for o in full.orders
    ]


def test_restore_keeps_halts_and_open_positions() -> None:
    eng, broker = make({0: B}, stop_loss_pct=5)
    step(eng, broker, BTC, candle(0, 100))
    eng.halt("maintenance", by="erin")
    snap = json.loads(json.dumps(eng.snapshot()))
    from ._helpers import Scripted

    eng2 = TradingEngine.restore(snap, Scripted({}))
    assert eng2.is_halted and "maintenance" in eng2.halted_reason
    assert eng2.positions[BTC].stop_price == Decimal(95)
    assert eng2.equity == eng.equity


def test_update_limits_moves_stops_and_is_audited() -> None:
    eng, broker = make({0: B}, stop_loss_pct=5)
    step(eng, broker, BTC, candle(0, 100))
    eng.update_limits(RiskLimits(stop_loss_pct=Decimal(2)))
    assert eng.positions[BTC].stop_price == Decimal(98)
    ev = [e for e in eng.drain_events() if e.action == "limits_updated"]
    assert ev[0].detail["changed"]["stop_loss_pct"] == {"old": "5", "new": "2"}


def test_fill_for_more_than_held_is_refused_and_alerted() -> None:
    eng, _broker = make({})
    bogus = Fill("x1", "cid", "test", BTC, Side.SELL, Decimal(1), Decimal(100), Decimal(0),
                 "USDT", T0)
    with pytest.raises(ValueError, match="only 0 is held"):
        eng.on_fill(bogus)
    assert any(e.kind == "reconciliation_mismatch" for e in eng.drain_events())


@pytest.mark.parametrize(
    ("algorithm", "params", "cut"),
    [
        ("sma-crossover", {"fastPeriod": 5, "slowPeriod": 12}, 13),
        ("sma-crossover", {"fastPeriod": 10, "slowPeriod": 30}, 400),
        ("rsi-mean-reversion", {"period": 6, "oversold": 35, "overbought": 65}, 101),
        ("rsi-mean-reversion", {"period": 14}, 600),
        ("bollinger-breakout", {"period": 10, "stdDev": 1.5}, 57),
        ("bollinger-breakout", {"period": 20}, 700),
    ],
)
def test_every_strategy_resumes_from_a_snapshot_at_any_point(
    algorithm: str, params: dict[str, float], cut: int
) -> None:
    path = bundled_candles(BTC, "1h")
    assert path is not None
    candles = load_candles(path)
    m = {BTC: default_market(BTC)}
    limits = RiskLimits(max_position_size_pct=Decimal(50), stop_loss_pct=Decimal(2),
                        strategy_max_consecutive_losses=2,
                        strategy_re_enable_check_hours=Decimal(12))

    def fresh() -> tuple[TradingEngine, PaperBroker]:
        return (TradingEngine(algorithm, create_algorithm(algorithm, params), limits, m,
                              Decimal(10000)),
                PaperBroker(m, {"USDT": Decimal(10000)}))

    eng, broker = fresh()
    full = run_replay(eng, broker, candles, ManualClock(), keep_events=True)
    eng2, broker2 = fresh()
    first = run_replay(eng2, broker2, candles[:cut], ManualClock(), keep_events=True)
    snap = json.loads(json.dumps(eng2.snapshot(), default=str))
    eng3 = TradingEngine.restore(snap, create_algorithm(algorithm, params))
    broker3 = PaperBroker(m, {})
    broker3.restore(json.loads(json.dumps(broker2.snapshot())))
    second = run_replay(eng3, broker3, candles[cut:], ManualClock(), keep_events=True)
    assert full.trades and first.trades + second.trades == full.trades
    assert eng3.summary() == eng.summary()
    assert [(e.action, e.reason) for e in first.events + second.events] == [
        (e.action, e.reason) for e in full.events
    ]


def test_risk_state_reports_how_close_the_halts_are() -> None:
    eng, broker = make({0: B}, max_position_size_pct=50, stop_loss_pct=0,
                       daily_loss_limit_pct=4, max_drawdown_pct=10)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 96))  # half the equity down 4%: about -2%
    rs = eng.risk_state()
    assert Decimal("1.9") < rs["daily_loss_pct"] < Decimal("2.2")
    assert 0.45 < rs["daily_loss_limit_used_ratio"] < 0.55
    assert 0.19 < rs["drawdown_limit_used_ratio"] < 0.22
    assert rs["halts"] == []
    assert Decimal(eng.summary()["drawdown_pct"]) == rs["drawdown_pct"].quantize(Decimal("0.0001"))


def test_restore_with_a_changed_risk_policy_moves_the_stops() -> None:
    """The RiskPolicy may change while the runner is down; the restored positions must
    be protected by the policy in force, not the one saved with the snapshot."""
    from ._helpers import Scripted

    eng, broker = make({0: B}, stop_loss_pct=5)
    step(eng, broker, BTC, candle(0, 100))
    snap = json.loads(json.dumps(eng.snapshot()))
    tighter = RiskLimits(stop_loss_pct=Decimal(2))
    eng2 = TradingEngine.restore(snap, Scripted({}), limits=tighter)
    assert eng2.positions[BTC].stop_price == Decimal(98)
    broker.on_candle(BTC, candle(1, 97, low=97))
    orders = eng2.on_candle(BTC, candle(1, 97, low=97))
    assert [o.reason for o in orders] == ["stop_loss"]
    # a policy that had no stop-loss gets one on restart
    eng, broker = make({0: B}, stop_loss_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    snap = json.loads(json.dumps(eng.snapshot()))
    eng3 = TradingEngine.restore(snap, Scripted({}), limits=RiskLimits(stop_loss_pct=5))
    assert eng3.positions[BTC].stop_price == Decimal(95)
