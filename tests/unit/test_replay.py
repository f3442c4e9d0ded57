"""Replaying the real BTC/USDT candles: the engine's trades equal an independent
reference computation, and the metrics equal empyrical-reloaded's on the same curve.

The reference below shares no code with kubetrade beyond the Candle type and the CSV
loader: it recomputes the moving averages in Decimal over list slices, and simulates
sizing, paper fills (slippage on the tick, fees rounded up to 1e-8), stop-loss, the
daily-loss halt and the drawdown halt in one plain loop, following the documented rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import empyrical
import numpy as np
import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.metrics import compute_metrics
from kubetrade.domain.models import Candle
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import (
    ReplayResult,
    bundled_candles,
    load_candles,
    run_replay,
)

BTC = "BTC/USDT"
DAY = 86_400_000
FEE = Decimal("0.001")
SLIP = Decimal(2) / Decimal(10_000)
TICK = Decimal("0.01")
LOT = Decimal("0.00001")
MIN_NOTIONAL = Decimal(5)


@dataclass
class RefTrade:
    entry_ms: int
    exit_ms: int
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    reason: str


def reference(candles: list[Candle], fast: int, slow: int, cash: Decimal, size_pct: Decimal,
              stop_pct: Decimal, daily_pct: Decimal, dd_pct: Decimal) -> list[RefTrade]:
    closes = [c.close for c in candles]
    interval = candles[1].ts_ms - candles[0].ts_ms
    # 1. signals: fast/slow SMA crossings, in exact Decimal
    signals: list[str | None] = [None] * len(candles)
    above = None
    for i in range(slow - 1, len(candles)):
        f = sum(closes[i - fast + 1 : i + 1]) / fast
        s = sum(closes[i - slow + 1 : i + 1]) / slow
        now = f > s
        if above is not None and now != above:
            signals[i] = "buy" if now else "sell"
        above = now
    # 2. the trading simulation
    trades: list[RefTrade] = []
    qty = Decimal(0)
    entry_ms = 0
    entry_price = stop = cash_out = Decimal(0)
    equity = peak = cash
    day = -1
    day_start = cash
    daily_until: int | None = None
    dd_halt = False

    def check(eq: Decimal) -> None:
        nonlocal peak, dd_halt, daily_until
        if eq > peak:
            peak = eq
        elif dd_pct > 0 and eq <= peak * (100 - dd_pct) / 100:
            dd_halt = True
        if daily_pct > 0 and daily_until is None and eq <= day_start * (100 - daily_pct) / 100:
            daily_until = (day + 1) * DAY

    def sell(c: Candle, close_ms: int, reason: str) -> None:
        nonlocal cash, qty, equity
        px = (c.close * (1 - SLIP)).quantize(TICK, rounding=ROUND_HALF_EVEN)
        fee = (qty * px * FEE).quantize(Decimal("1e-8"), rounding=ROUND_UP)
        cash_in = qty * px - fee
        cash += cash_in
        trades.append(RefTrade(entry_ms, close_ms, qty, entry_price, px, cash_in - cash_out,
                               reason))
        qty = Decimal(0)
        equity = cash
        check(equity)

    for i, c in enumerate(candles):
        close_ms = c.ts_ms + interval
        if close_ms // DAY != day:
            day = close_ms // DAY
            day_start = equity
            if daily_until is not None and close_ms >= daily_until:
                daily_until = None
        stop_hit = False
        if qty > 0:
            stop_hit = stop_pct > 0 and c.low <= stop
            equity = cash + qty * c.close
            check(equity)
        sig = signals[i]
        if stop_hit:
            sell(c, close_ms, "stop_loss")
        elif sig == "buy" and qty == 0 and not dd_halt and daily_until is None:
            value = min(equity * size_pct / 100, cash / (1 + FEE))
            q = (value / c.close / LOT).to_integral_value(rounding=ROUND_DOWN) * LOT
            if q >= LOT and q * c.close >= MIN_NOTIONAL:
                px = (c.close * (1 + SLIP)).quantize(TICK, rounding=ROUND_HALF_EVEN)
                fee = (q * px * FEE).quantize(Decimal("1e-8"), rounding=ROUND_UP)
                cash_out = q * px + fee
                cash -= cash_out
                qty, entry_ms, entry_price = q, close_ms, px
                stop = px * (100 - stop_pct) / 100
                equity = cash + qty * c.close
                check(equity)
        elif sig == "sell" and qty > 0:
            sell(c, close_ms, "signal")
    return trades


def engine_run(candles: list[Candle], fast: int, slow: int, **limits: Decimal) -> tuple[
        TradingEngine, ReplayResult]:
    m = {BTC: default_market(BTC)}
    eng = TradingEngine(
        "ref", create_algorithm("sma-crossover", {"fastPeriod": fast, "slowPeriod": slow}),
        RiskLimits(strategy_max_consecutive_losses=0, **limits), m, Decimal(10000))
    broker = PaperBroker(m, {"USDT": Decimal(10000)}, fee_rate=FEE, slippage_bps=Decimal(2))
    progress: list[tuple[int, int]] = []
    result = run_replay(eng, broker, candles, ManualClock(),
                        on_progress=lambda d, t: progress.append((d, t)), progress_every=500)
    assert progress[-1] == (len(candles), len(candles))
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    return eng, result


CASES = [
    ("1m", 10, 30, dict(max_position_size_pct=Decimal(50), stop_loss_pct=Decimal("0.2"),
                        daily_loss_limit_pct=Decimal("1.5"), max_drawdown_pct=Decimal(15))),
    ("1m", 10, 30, dict(max_position_size_pct=Decimal(10), stop_loss_pct=Decimal("0.1"),
                        daily_loss_limit_pct=Decimal(3), max_drawdown_pct=Decimal(15))),
    ("1h", 10, 30, dict(max_position_size_pct=Decimal(80), stop_loss_pct=Decimal("1.5"),
                        daily_loss_limit_pct=Decimal("1.2"), max_drawdown_pct=Decimal(4))),
    ("1h", 5, 20, dict(max_position_size_pct=Decimal(10), stop_loss_pct=Decimal(5),
                       daily_loss_limit_pct=Decimal(3), max_drawdown_pct=Decimal(15))),
]


@pytest.mark.parametrize(("timeframe", "fast", "slow", "limits"), CASES)
def test_sma_crossover_with_risk_matches_independent_reference(
    timeframe: str, fast: int, slow: int, limits: dict[str, Decimal]
) -> None:
    path = bundled_candles(BTC, timeframe)
    assert path is not None
    candles = load_candles(path)
    _, result = engine_run(candles, fast, slow, **limits)
    ref = reference(candles, fast, slow, Decimal(10000), limits["max_position_size_pct"],
                    limits["stop_loss_pct"], limits["daily_loss_limit_pct"],
                    limits["max_drawdown_pct"])
    got = [RefTrade(t.entry_ms, t.exit_ms, t.quantity, t.entry_price, t.exit_price, t.pnl,
                    t.exit_reason) for t in result.trades]
    assert len(got) >= 4
    assert got == ref
    assert result.rejected == 0


def test_real_candles_exercise_stop_loss_and_halts() -> None:
    """The cases above are not vacuous: the risk rules do fire on this data."""
    reasons = set()
    halts = set()
    for timeframe, fast, slow, limits in CASES:
        candles = load_candles(bundled_candles(BTC, timeframe))  # type: ignore[arg-type]
        eng, result = engine_run(candles, fast, slow, **limits)
        reasons |= {t.exit_reason for t in result.trades}
        halts |= {e.kind for e in eng.drain_events()}
        m = {BTC: default_market(BTC)}
        eng2 = TradingEngine("ref", create_algorithm("sma-crossover", {"fastPeriod": fast,
                                                                      "slowPeriod": slow}),
                             RiskLimits(strategy_max_consecutive_losses=0, **limits), m,
                             Decimal(10000))
        r2 = run_replay(eng2, PaperBroker(m, {"USDT": Decimal(10000)}), candles, ManualClock(),
                        keep_events=True)
        halts |= {e.kind for e in r2.events}
    assert {"stop_loss", "signal"} <= reasons
    assert {"daily_loss_limit", "max_drawdown_halt"} <= halts


@pytest.mark.parametrize("timeframe", ["1m", "1h"])
def test_metrics_match_empyrical_on_the_same_equity_curve(timeframe: str) -> None:
    candles = load_candles(bundled_candles(BTC, timeframe))  # type: ignore[arg-type]
    _, result = engine_run(candles, 10, 30, max_position_size_pct=Decimal(90))
    m = compute_metrics(result.trades, result.equity_curve)
    equity = np.array([float(e) for _, e in result.equity_curve])
    returns = equity[1:] / equity[:-1] - 1
    ann = 525_600 if timeframe == "1m" else 8_760
    assert m.periods_per_year == ann
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=ann),
                                     rel=1e-9)
    assert m.max_drawdown == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert m.total_return == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)
    assert m.max_drawdown > 0 and m.trades == len(result.trades) > 0


def test_load_candles_errors_name_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,o,h,l,c,v\n")
    with pytest.raises(ValueError, match="header must be"):
        load_candles(bad)
    bad.write_text("timestamp_ms,open,high,low,close,volume\n1,2,3,1,2,5\n2,2,x,1,2,5\n")
    with pytest.raises(ValueError, match=r"bad.csv:3"):
        load_candles(bad)
    bad.write_text("timestamp_ms,open,high,low,close,volume\n1,2,1.5,1,2,5\n")
    with pytest.raises(ValueError, match="bracket"):
        load_candles(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("timestamp_ms,open,high,low,close,volume\n120,1,1,1,1,1\n60,1,1,1,1,1\n"
                  "120,1,1,1,1,1\n")
    assert [c.ts_ms for c in load_candles(ok)] == [60, 120]


def test_bundled_candles_are_the_real_binance_files() -> None:
    one_min = load_candles(bundled_candles(BTC, "1m"))  # type: ignore[arg-type]
    assert len(one_min) == 1440 and one_min[0].ts_ms == 1726876800000
    assert len(load_candles(bundled_candles(BTC, "1h"))) == 744  # type: ignore[arg-type]
    assert bundled_candles("DOGE/USDT") is None
