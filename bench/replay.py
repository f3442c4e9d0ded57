"""Replay throughput: kubetrade's live engine vs backtesting.py on the same candles.

What runs: SMA crossover 10/30 on >= 500,000 one-minute candles, through the same
TradingEngine (risk engine, tracker, portfolio) and PaperBroker that live paper trading
uses, driven by ``run_replay`` with a ManualClock. Then backtesting.py runs the same
strategy (SMA 10/30 crossover, long only, 10% of equity per entry, 5% stop-loss,
0.1% commission, fills at the close) on the same candles, in the same process.

The candles are the real Binance BTC/USDT 1-minute candles of 2024-09-21 (bundled),
tiled until there are enough: copies alternate forward and time-reversed (open/close
swapped) so the price path stays continuous and bounded, with timestamps shifted so
the series is one uninterrupted minute grid. Building the candles (ours: Candle objects;
theirs: a DataFrame) is not timed for either side.

Figures printed: candles/s for each, by process CPU time (robust when other processes
share the cores) and by wall time, best of --repeat runs; the ratio; trades made; peak
traced Python memory of our replay (tracemalloc, separate run) and the process's peak
RSS before and after backtesting.py was imported. Run: ``.venv/bin/python bench/replay.py``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from decimal import Decimal
from typing import Any

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import ReplayResult, bundled_candles, load_candles, run_replay

SYMBOL = "BTC/USDT"
FAST, SLOW = 10, 30
CASH = Decimal(10_000)


def tiled_candles(n: int) -> list[Candle]:
    path = bundled_candles(SYMBOL, "1m")
    if path is None:
        raise SystemExit("bundled BTC/USDT 1m candles are missing")
    day = load_candles(path)
    step = day[1].ts_ms - day[0].ts_ms
    reverse = [Candle(0, c.close, c.high, c.low, c.open, c.volume) for c in reversed(day)]
    out: list[Candle] = []
    ts = day[0].ts_ms
    k = 0
    while len(out) < n:
        for c in day if k % 2 == 0 else reverse:
            out.append(Candle(ts, c.open, c.high, c.low, c.close, c.volume))
            ts += step
            if len(out) == n:
                break
        k += 1
    return out


def ours(candles: list[Candle]) -> tuple[float, float, ReplayResult, TradingEngine]:
    markets = {SYMBOL: default_market(SYMBOL)}
    # Every rule is evaluated; the two halts and the tracker are set so they never fire
    # (0 = off is still checked per candle), because a halted engine stops trading and
    # would make the comparison flatter us: both sides must make the same trades.
    limits = RiskLimits(max_position_size_pct=Decimal(10), stop_loss_pct=Decimal(5),
                        daily_loss_limit_pct=Decimal(0), max_drawdown_pct=Decimal(0),
                        strategy_max_consecutive_losses=0)
    engine = TradingEngine("bench", create_algorithm("sma-crossover", {"fastPeriod": FAST,
                                                                      "slowPeriod": SLOW}),
                           limits, markets, CASH)
    broker = PaperBroker(markets, {"USDT": CASH}, slippage_bps=Decimal(0))
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    result = run_replay(engine, broker, candles, ManualClock())
    return time.process_time() - c0, time.perf_counter() - t0, result, engine


def theirs(candles: list[Candle]) -> tuple[float, float, int]:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    df = pd.DataFrame(
        {
            "Open": [float(c.open) for c in candles],
            "High": [float(c.high) for c in candles],
            "Low": [float(c.low) for c in candles],
            "Close": [float(c.close) for c in candles],
            "Volume": [float(c.volume) for c in candles],
        },
        index=pd.to_datetime([c.ts_ms for c in candles], unit="ms"),
    )

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    price = self.data.Close[-1]
                    self.buy(size=0.1, sl=price * 0.95)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    # Cash large enough that 10% of equity buys whole units (backtesting.py sizes in
    # integer units); it changes nothing in the per-bar work.
    bt = Backtest(df, SmaCross, cash=1_000_000_000, commission=0.001, trade_on_close=True,
                  finalize_trades=True)
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    stats = bt.run()
    return time.process_time() - c0, time.perf_counter() - t0, int(stats["# Trades"])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-backtesting", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    candles = tiled_candles(args.candles)
    n = len(candles)
    print(f"candles: {n:,} x 1m (real BTC/USDT 2024-09-21, tiled), "
          f"built in {time.perf_counter() - t0:.1f}s")

    # Memory first, in a run of its own (tracemalloc slows everything it traces).
    tracemalloc.start()
    _, _, traced, _ = ours(candles)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    gc.collect()
    print(f"kubetrade replay peak traced memory: {peak / 2**20:.1f} MiB "
          f"(includes the {n:,}-point equity curve)")
    print(f"process peak RSS before backtesting.py: {peak_rss_mb():.0f} MiB "
          f"(includes the {n:,} Candle objects)")

    compare = not args.skip_backtesting
    if compare:
        try:
            import backtesting  # noqa: F401
        except ImportError:
            print("backtesting.py is not installed (pip install '.[bench]'); no comparison")
            compare = False
    # Timed runs alternate ours / theirs, so load from other processes hits both alike.
    best = best_wall = best_bt = best_bt_wall = float("inf")
    bt_trades = 0
    result: ReplayResult | None = None
    engine: TradingEngine | None = None
    for _ in range(args.repeat):
        result = engine = None
        gc.collect()
        cpu, wall, result, engine = ours(candles)
        best, best_wall = min(best, cpu), min(best_wall, wall)
        if compare:
            cpu, wall, bt_trades = theirs(candles)
            best_bt, best_bt_wall = min(best_bt, cpu), min(best_bt_wall, wall)
    assert result is not None and engine is not None
    ours_rate = n / best
    print(f"kubetrade replay (engine + risk + paper broker): {ours_rate:,.0f} candles/s of CPU "
          f"time ({n / best_wall:,.0f}/s wall; best of {args.repeat}), "
          f"trades {len(result.trades)}, orders {len(result.orders)}, "
          f"equity {engine.equity:.2f}")
    if not compare:
        return 0 if args.skip_backtesting else 1
    bt_rate = n / best_bt
    print(f"backtesting.py {sys.modules['backtesting'].__version__}: {bt_rate:,.0f} candles/s "
          f"of CPU time ({n / best_bt_wall:,.0f}/s wall; best of {args.repeat}), "
          f"trades {bt_trades}")
    print(f"process peak RSS after backtesting.py: {peak_rss_mb():.0f} MiB")
    ratio = ours_rate / bt_rate
    wall_ratio = best_bt_wall / best_wall
    print(f"ratio kubetrade / backtesting.py: {ratio:.2f}x by CPU time, {wall_ratio:.2f}x by "
          f"wall time (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
