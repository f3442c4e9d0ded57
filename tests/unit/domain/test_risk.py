"""Each risk rule on its own, then several at once, through the real engine and broker.

Scripted strategies are keyed by the strategy's own candle count (0 = first candle it
saw for that symbol), not by the candle's minute.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from kubetrade.domain.engine import HALT_DAILY, HALT_DRAWDOWN, HALT_MANUAL
from kubetrade.domain.models import OrderStatus, Side
from kubetrade.domain.risk import PreTradeControls, RiskLimits, size_entry
from kubetrade.exchange.paper import default_market

from ._helpers import BTC, ETH, MIN, T0, SymbolScripted, candle, make, refusals, step

B, S = Side.BUY, Side.SELL


def test_defaults_allow_paper_trading_and_use_runbook_percent_units() -> None:
    lim = RiskLimits()
    assert lim.stop_loss_pct == Decimal("5.0")
    assert lim.daily_loss_limit_pct == Decimal("3.0")
    eng, broker = make({0: B})
    orders, fills = step(eng, broker, BTC, candle(0, 100))
    assert [o.side for o in orders] == [B] and fills


def test_limits_accept_camel_case_and_name_the_bad_field() -> None:
    lim = RiskLimits.model_validate({"stopLossPct": "2.5", "maxConcurrentPositions": 2})
    assert lim.stop_loss_pct == Decimal("2.5") and lim.max_concurrent_positions == 2
    with pytest.raises(ValidationError, match=r"max_position_size_pct|maxPositionSizePct"):
        RiskLimits.model_validate({"maxPositionSizePct": 0})
    with pytest.raises(ValidationError, match="allowed_symbols"):
        RiskLimits(allowed_symbols=["BTCUSDT"])
    with pytest.raises(ValidationError, match="bogus"):
        RiskLimits.model_validate({"bogus": 1})


def test_position_sized_from_equity_and_rounded_down_to_lot_step() -> None:
    eng, broker = make({0: B}, max_position_size_pct=10)
    orders, _ = step(eng, broker, BTC, candle(0, "63201.05"))
    # 10% of 10000 = 1000 USDT / 63201.05 = 0.015822... -> 0.01582 (step 0.00001)
    assert orders[0].quantity == Decimal("0.01582")


def test_sizing_refuses_below_exchange_minimums() -> None:
    m = default_market(BTC)
    lim = RiskLimits(max_position_size_pct=Decimal("0.01"))
    _, verdict = size_entry(Decimal(10000), Decimal(10000), Decimal(60000), m, lim,
                              Decimal("0.001"))
    assert not verdict.ok and verdict.rule == "below_min_notional"  # 1 USDT < 5
    _qty, verdict = size_entry(Decimal(10000), Decimal(10000), Decimal(10**9), m,
                              RiskLimits(), Decimal("0.001"))
    assert not verdict.ok and verdict.rule == "below_min_qty"
    eng, broker = make({0: B}, cash="40")  # 10% of 40 = 4 USDT < min notional 5
    orders, _ = step(eng, broker, BTC, candle(0, 100))
    assert orders == [] and refusals(eng) == ["below_min_notional"]


def test_stop_loss_sells_when_low_reaches_stop() -> None:
    eng, broker = make({0: B}, stop_loss_pct=5)
    step(eng, broker, BTC, candle(0, 100))
    pos = eng.positions[BTC]
    assert pos.stop_price == Decimal(95)
    orders, _ = step(eng, broker, BTC, candle(1, 97, low="95.01"))
    assert orders == []
    orders, _fills = step(eng, broker, BTC, candle(2, 96, low="94.99"))
    assert [(o.side, o.reason) for o in orders] == [(S, "stop_loss")]
    assert BTC not in eng.positions
    events = eng.drain_events()
    stop = [e for e in events if e.action == "stop_loss"]
    assert stop and stop[0].actor == "risk-engine" and "94.99" in stop[0].reason
    closed = [e for e in events if e.kind == "trade_closed"]
    assert closed[0].detail["exit_reason"] == "stop_loss"


def test_stop_loss_zero_disables_it() -> None:
    eng, broker = make({0: B}, stop_loss_pct=0, daily_loss_limit_pct=0, max_drawdown_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    assert eng.positions[BTC].stop_price is None
    orders, _ = step(eng, broker, BTC, candle(1, 50, low=40))
    assert orders == []


def test_daily_loss_limit_halts_until_next_utc_day() -> None:
    # 100% position so a 4% price drop is a 4% equity loss (> 3% limit); stop-loss off.
    eng, broker = make({0: B, 1: S, 2: B, 4: B}, max_position_size_pct=50,
                       stop_loss_pct=0, max_drawdown_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 86))  # -14% on half the equity: -7%; exits
    assert eng.is_halted and HALT_DAILY in eng.halts
    events = eng.drain_events()
    alert = [e for e in events if e.kind == "daily_loss_limit"]
    assert alert and alert[0].severity == "critical" and alert[0].actor == "risk-engine"
    orders, _ = step(eng, broker, BTC, candle(3, 86))
    assert orders == [] and refusals(eng) == ["halted"]
    assert eng.summary()["phase"] == "Halted"
    # Next UTC day (candle 1440 closes at 00:01 of the next day): halt lifted.
    step(eng, broker, BTC, candle(1440, 86))
    assert not eng.is_halted
    assert any(e.action == "halt_lifted" for e in eng.drain_events())
    orders, _ = step(eng, broker, BTC, candle(1500, 86))
    assert [o.side for o in orders] == [B]


def test_max_drawdown_halts_until_a_person_resumes() -> None:
    eng, broker = make({0: B, 2: B, 3: B}, max_position_size_pct=100,
                       stop_loss_pct=0, daily_loss_limit_pct=0, max_drawdown_pct=10)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 89))
    assert HALT_DRAWDOWN in eng.halts
    assert any(e.kind == "max_drawdown_halt" for e in eng.drain_events())
    step(eng, broker, BTC, candle(1500, 89))  # a new day does not lift it
    assert HALT_DRAWDOWN in eng.halts
    assert refusals(eng) == []  # already in a position: BUY is not an entry
    eng.resume(by="alice")
    assert not eng.is_halted
    ev = [e for e in eng.drain_events() if e.action == "resume"]
    assert ev[0].actor == "alice" and "max_drawdown" in ev[0].reason
    # the peak restarts at current equity, so it does not re-halt at once
    step(eng, broker, BTC, candle(1501, 88))
    assert not eng.is_halted


def test_max_concurrent_positions() -> None:
    strat = SymbolScripted(per_symbol={BTC: {0: B}, ETH: {0: B}})
    eng, broker = make(symbols=(BTC, ETH), strategy=strat, max_concurrent_positions=1)
    step(eng, broker, BTC, candle(0, 100))
    orders, _ = step(eng, broker, ETH, candle(0, 10))
    assert orders == [] and refusals(eng) == ["max_concurrent_positions"]


def test_max_order_quantity_and_notional_cap_sizing_and_refuse_bigger_orders() -> None:
    eng, broker = make({0: B}, max_order_quantity=Decimal("0.5"))
    orders, _ = step(eng, broker, BTC, candle(0, 100))  # 10% = 10 units, capped to 0.5
    assert orders[0].quantity == Decimal("0.5")
    eng, broker = make({0: B}, max_order_notional=Decimal(200))
    orders, _ = step(eng, broker, BTC, candle(0, 100))
    assert orders[0].quantity == Decimal(2)
    ctl = PreTradeControls(RiskLimits(max_order_quantity=Decimal(1),
                                      max_order_notional=Decimal(1000)))
    ctl.set_reference(BTC, Decimal(100), T0)
    kw = dict(symbol=BTC, side=B, price=Decimal(100), now_ms=T0, reduce_only=False,
              open_positions=0, has_position=False, open_same_side=False, allowed_symbols=None)
    assert ctl.check(quantity=Decimal(2), **kw).rule == "max_order_quantity"  # type: ignore[arg-type]
    ctl = PreTradeControls(RiskLimits(max_order_notional=Decimal(150)))
    ctl.set_reference(BTC, Decimal(100), T0)
    assert ctl.check(quantity=Decimal(2), **kw).rule == "max_order_notional"  # type: ignore[arg-type]
    assert ctl.check(quantity=Decimal(1), **kw).ok  # type: ignore[arg-type]


def test_price_collar_against_fresh_reference() -> None:
    eng, broker = make({0: B}, price_collar_pct=2)
    # The ticker says 110 just after the candle closed at 100: a 10% gap.
    eng.update_reference(BTC, Decimal(110), T0 + MIN + 1)
    orders, _ = step(eng, broker, BTC, candle(0, 100))
    assert orders == []
    ev = [e for e in eng.drain_events() if e.action == "order_refused"]
    assert ev[0].detail["rule"] == "price_collar" and "price_collar_pct" in ev[0].reason


def test_stale_reference_refuses_entries() -> None:
    eng, broker = make({0: B}, reference_max_age_seconds=30)
    # the candle is handled 2 minutes after it closed (the runner catching up)
    orders, _ = step(eng, broker, BTC, candle(0, 100), now_ms=T0 + 3 * MIN)
    assert orders == [] and refusals(eng) == ["stale_reference"]


def test_duplicate_order_guard() -> None:
    lim = RiskLimits(order_interval_seconds=60)
    ctl = PreTradeControls(lim)
    ctl.set_reference(BTC, Decimal(100), T0)
    kw = dict(symbol=BTC, side=B, quantity=Decimal(1), price=Decimal(100), reduce_only=False,
              open_positions=0, has_position=False, allowed_symbols=None)
    assert ctl.check(now_ms=T0, open_same_side=False, **kw).ok  # type: ignore[arg-type]
    ctl.record(BTC, B, Decimal(1), T0)
    assert ctl.check(now_ms=T0 + 1000, open_same_side=False, **kw).rule == "duplicate_order"  # type: ignore[arg-type]
    assert ctl.check(now_ms=T0 + 61_000, open_same_side=False, **kw).ok  # type: ignore[arg-type]
    assert ctl.check(now_ms=T0 + 61_000, open_same_side=True, **kw).rule == "duplicate_order"  # type: ignore[arg-type]
    # In the engine: while an entry is open at the exchange, a new BUY places nothing.
    eng, broker = make({0: B, 1: B})
    broker.on_candle(BTC, candle(0, 100))
    first = eng.on_candle(BTC, candle(0, 100))
    assert len(first) == 1  # not sent yet: still open in the engine's books
    assert eng.on_candle(BTC, candle(1, 100)) == []


def test_throttle_orders_per_interval() -> None:
    script = {i: (B if i % 2 == 0 else S) for i in range(6)}
    eng, broker = make(script, max_orders_per_interval=3, order_interval_seconds=600,
                       price_collar_pct=0)
    sent: list[Side] = []
    for i in range(6):
        orders, _ = step(eng, broker, BTC, candle(i, 100 + i))
        sent.extend(o.side for o in orders)
    # buy, sell, buy go out; the 4th order (a sell) is an exit and is exempt; the BUY
    # at minute 4 is refused by the throttle; so is nothing else.
    assert sent == [B, S, B, S]
    assert refusals(eng) == ["throttle"]


def test_symbol_allowlist() -> None:
    eng, broker = make({0: B}, allowed_symbols=[ETH])
    orders, _ = step(eng, broker, BTC, candle(0, 100))
    assert orders == [] and refusals(eng) == ["symbol_not_allowed"]


def test_manual_halt_blocks_entries_and_exits_but_not_stop_loss() -> None:
    eng, broker = make({0: B, 1: S, 2: B}, stop_loss_pct=5)
    step(eng, broker, BTC, candle(0, 100))
    eng.halt("emergency stop", by="bob")
    assert HALT_MANUAL in eng.halts
    orders, _ = step(eng, broker, BTC, candle(1, 101))
    assert orders == [] and refusals(eng) == ["halted"]
    orders, _ = step(eng, broker, BTC, candle(2, 90, low=90))
    assert [o.reason for o in orders] == ["stop_loss"]
    eng.resume(by="bob")
    assert not eng.is_halted


def test_close_all_sells_every_position_even_when_halted() -> None:
    strat = SymbolScripted(per_symbol={BTC: {0: B}, ETH: {0: B}})
    eng, broker = make(symbols=(BTC, ETH), strategy=strat)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, ETH, candle(0, 10))
    eng.halt("close-all", by="ops")
    orders = eng.close_all(T0 + 2 * MIN)
    assert sorted(o.symbol for o in orders) == [BTC, ETH]
    assert all(o.side is S and o.reason == "close_all" for o in orders)
    for o in orders:
        updated, fills = broker.submit(o)
        eng.on_order_update(updated)
        for f in fills:
            eng.on_fill(f)
    assert eng.positions == {}


def test_rules_combined_over_a_trading_day() -> None:
    """Stop-loss, throttle, daily loss and the allowlist interacting in one session."""
    strat = SymbolScripted(per_symbol={
        BTC: {0: B, 2: B, 3: B, 5: B},
        ETH: {0: B},
    })
    eng, broker = make(symbols=(BTC, ETH), strategy=strat, max_position_size_pct=60,
                       stop_loss_pct=5, daily_loss_limit_pct=3, max_drawdown_pct=50,
                       allowed_symbols=[BTC], max_orders_per_interval=2,
                       order_interval_seconds=120)
    orders, _ = step(eng, broker, ETH, candle(0, 10))
    assert orders == [] and refusals(eng) == ["symbol_not_allowed"]
    orders, _ = step(eng, broker, BTC, candle(0, 100))
    assert len(orders) == 1
    # price gaps down 10%: stop-loss sells; the loss (6% of equity) trips the daily halt
    orders, _ = step(eng, broker, BTC, candle(1, 90, low=90))
    assert [o.reason for o in orders] == ["stop_loss"]
    assert HALT_DAILY in eng.halts and HALT_DRAWDOWN not in eng.halts
    events = eng.drain_events()
    kinds = [e.kind for e in events if e.is_alert]
    assert "daily_loss_limit" in kinds and "trade_closed" in kinds
    orders, _ = step(eng, broker, BTC, candle(2, 90))
    assert orders == [] and refusals(eng) == ["halted"]
    # next day: halt gone, entry allowed again (throttle window long passed)
    for i in (3, 1440):
        step(eng, broker, BTC, candle(i, 90))
    eng.drain_events()
    orders, _ = step(eng, broker, BTC, candle(1441, 90))
    assert [o.side for o in orders] == [B]
    assert not eng.is_halted


def test_daily_loss_counts_from_the_equity_at_utc_midnight() -> None:
    """The day's starting equity is the equity *at* 00:00 UTC, i.e. marked at the close
    of the candle that closes at midnight; a loss made before midnight belongs to the
    day that is over and must not count against (and halt) the new day."""
    eng, broker = make({0: B}, max_position_size_pct=100, stop_loss_pct=0,
                       max_drawdown_pct=0, daily_loss_limit_pct=3)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 100))  # the 1-minute grid
    step(eng, broker, BTC, candle(1438, 100))  # closes 23:59
    step(eng, broker, BTC, candle(1439, 98))  # closes 00:00 next day: -2% yesterday
    midnight = eng.risk_state()
    assert midnight["day_start_equity"] == eng.equity
    assert not eng.is_halted
    # -1.5% from midnight: under the 3% limit for the new day
    step(eng, broker, BTC, candle(1440, "96.53"))
    assert not eng.is_halted, eng.halted_reason
    assert eng.risk_state()["daily_loss_pct"] < 2
    # a further fall that does reach 3% below the midnight equity halts
    step(eng, broker, BTC, candle(1441, "95"))
    assert HALT_DAILY in eng.halts


def test_a_daily_loss_seen_at_midnight_halts_the_day_that_begins() -> None:
    """The limit reached at the mark of 00:00 (the last candle of the day, or the only
    one with a 1d timeframe) halts entries for the UTC day that begins then: a halt
    that ended the moment it started would not halt at all."""
    eng, broker = make({0: B}, max_position_size_pct=50, stop_loss_pct=0,
                       max_drawdown_pct=0, daily_loss_limit_pct=3)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 100))
    step(eng, broker, BTC, candle(1438, 100))
    step(eng, broker, BTC, candle(1439, 90))  # -5% of equity during the day's last minute
    assert any(e.kind == "daily_loss_limit" for e in eng.drain_events())
    assert HALT_DAILY in eng.halts
    assert eng.halts[HALT_DAILY].until_ms == T0 + 2 * 1440 * MIN
    assert eng.risk_state()["day_start_equity"] == eng.equity  # the new day's baseline
    step(eng, broker, BTC, candle(1440, 90))
    assert HALT_DAILY in eng.halts
    step(eng, broker, BTC, candle(2879, 90))  # closes at the next midnight: lifted
    assert not eng.is_halted


def test_max_concurrent_positions_counts_entries_still_at_the_exchange() -> None:
    """A BUY sent but not yet filled (or whose outcome was lost) may become a position:
    it counts against max_concurrent_positions, or two entries slip past a limit of 1."""
    strat = SymbolScripted(per_symbol={BTC: {0: B}, ETH: {0: B}})
    eng, broker = make(symbols=(BTC, ETH), strategy=strat, max_concurrent_positions=1)
    broker.on_candle(BTC, candle(0, 100))
    [pending] = eng.on_candle(BTC, candle(0, 100))
    pending.status = OrderStatus.UNKNOWN  # the send timed out
    eng.on_order_update(pending)
    eng.drain_events()
    assert eng.on_candle(ETH, candle(0, 10)) == []
    assert refusals(eng) == ["max_concurrent_positions"]
    # once the exchange says it was never filled, the slot is free again
    pending.status = OrderStatus.EXPIRED
    eng.on_order_update(pending)
    strat.per_symbol[ETH][1] = B
    assert [o.symbol for o in eng.on_candle(ETH, candle(1, 10))] == [ETH]


def test_an_entry_sized_by_the_cash_left_is_not_refused_for_the_price_moving() -> None:
    """When cash (not max_position_size_pct) limits an entry, the market order must
    still be payable if it fills a little above the candle's close (paper slippage, a
    live tick): otherwise every such entry is refused with insufficient funds."""
    from kubetrade.domain.engine import TradingEngine
    from kubetrade.exchange.paper import PaperBroker

    from ._helpers import markets

    for pct, symbols in ((100, (BTC,)), (60, (BTC, ETH))):
        strat = SymbolScripted(per_symbol={BTC: {0: B}, ETH: {0: B}})
        eng = TradingEngine("test", strat, RiskLimits(max_position_size_pct=pct),
                            markets(BTC, ETH), Decimal(10000))
        broker = PaperBroker(markets(BTC, ETH), {"USDT": Decimal(10000)})  # 2 bps slippage
        for sym, price in zip(symbols, ("63201.05", "2500.37"), strict=False):
            step(eng, broker, sym, candle(0, price))  # the 2nd is sized by the cash left
        assert refusals(eng) == []
        assert set(eng.positions) == set(symbols)


def test_stop_loss_is_not_held_back_by_an_entry_still_open() -> None:
    """Part of a BUY filled and the rest is still open at the exchange when the price
    gaps through the stop: what is held must be sold, not left unprotected until the
    entry's fate is known."""
    from kubetrade.domain.models import Fill

    eng, _broker = make({0: B}, stop_loss_pct=5)
    [entry] = eng.on_candle(BTC, candle(0, 100))
    half = entry.quantity / 2
    eng.on_fill(Fill("t1", entry.client_order_id, "test", BTC, B, half, Decimal(100),
                     Decimal("0.01"), "USDT", T0 + MIN))
    entry.status, entry.filled_quantity = OrderStatus.PARTIALLY_FILLED, half
    eng.on_order_update(entry)
    orders = eng.on_candle(BTC, candle(1, 90, low=90))
    assert [(o.side, o.reason, o.quantity) for o in orders] == [(S, "stop_loss", half)]


def test_daily_halt_lifts_with_the_candle_that_closes_at_midnight_even_on_a_slow_clock() -> None:
    """The candle closing at 00:00 proves the new day; a runner clock a moment behind
    the exchange's must not keep yesterday's halt for the whole new day."""
    eng, broker = make({0: B}, max_position_size_pct=50, stop_loss_pct=0, max_drawdown_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 86))
    assert HALT_DAILY in eng.halts
    step(eng, broker, BTC, candle(1439, 86), now_ms=T0 + 1440 * MIN - 500)
    assert not eng.is_halted
    # and a loss seen at that midnight candle halts the new day, slow clock or not
    eng, broker = make({0: B}, max_position_size_pct=50, stop_loss_pct=0, max_drawdown_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 100))
    step(eng, broker, BTC, candle(1439, 86), now_ms=T0 + 1440 * MIN - 500)
    assert eng.halts[HALT_DAILY].until_ms == T0 + 2 * 1440 * MIN
