"""Rules strategies: replay speed against the built-in SMA crossover, and rule cost.

What runs, on the same tiled real BTC/USDT 1-minute candles as bench/replay.py:

1. the built-in SMA crossover 10/30 through ``run_replay`` (engine, risk, paper broker);
2. ``algorithm: rules`` with three indicators (EMA 12, EMA 26, RSI 14; entry
   ``crossed_above(fast, slow) && rsi < 70``, exit ``crossed_below(fast, slow) || rsi >
   80``, examples/strategies/btc-rules.yaml) through the same ``run_replay``: the
   replay announces its candles, so indicators and rules are computed in bulk; the
   time includes that (Decimal -> float conversion, indicators, expressions);
3. the same rules on the live path (one candle at a time: O(1) indicator updates and
   one or two CEL evaluations per candle), on fewer candles;
4. the cost of one rule evaluation (compiled CEL program, the values of one candle),
   and, for the record, of the same expression in the other CEL bindings when they are
   installed (they are not dependencies: ``pip install common-expression-language
   cel-python``).

Figures: candles/s of CPU time (best of --repeat), the ratio rules/SMA (target: within
2x), microseconds per evaluation. Run: ``.venv/bin/python -m bench.rules``.
"""

from __future__ import annotations

import argparse
import gc
import time
import timeit
from decimal import Decimal
from typing import Any

from bench.replay import tiled_candles
from kubetrade.domain.algorithms import Algorithm, create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.rules.algorithm import RulesAlgorithm
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import run_replay

SYMBOL = "BTC/USDT"
CASH = Decimal(10_000)
RULES: dict[str, Any] = {
    "indicators": {"fast": {"ema": {"period": 12}}, "slow": {"ema": {"period": 26}},
                   "rsi": {"rsi": {"period": 14}}},
    "entry": "crossed_above(fast, slow) && rsi < 70",
    "exit": "crossed_below(fast, slow) || rsi > 80",
}


def replay_cpu(algo: Algorithm[Any, Any], candles: list[Candle]) -> tuple[float, int]:
    """CPU seconds of one replay, and the orders it made."""
    markets = {SYMBOL: default_market(SYMBOL)}
    limits = RiskLimits(max_position_size_pct=Decimal(10), stop_loss_pct=Decimal(5),
                        daily_loss_limit_pct=Decimal(0), max_drawdown_pct=Decimal(0),
                        strategy_max_consecutive_losses=0)
    engine = TradingEngine("bench", algo, limits, markets, CASH)
    broker = PaperBroker(markets, {"USDT": CASH}, slippage_bps=Decimal(0))
    gc.collect()
    c0 = time.process_time()
    result = run_replay(engine, broker, candles, ManualClock(), equity_every=1000)
    return time.process_time() - c0, len(result.orders)


def best_of(repeat: int, make: Any, candles: list[Candle]) -> tuple[float, int]:
    runs = [replay_cpu(make(), candles) for _ in range(repeat)]
    return min(r[0] for r in runs), runs[0][1]


def live_path(n: int, candles: list[Candle]) -> tuple[float, int]:
    def make() -> Algorithm[Any, Any]:
        algo = create_algorithm("rules", rules=RULES)
        algo.prepare = lambda *_: None  # type: ignore[method-assign]
        return algo

    return replay_cpu(make(), candles[:n])


def evaluation_cost() -> None:
    algo = create_algorithm("rules", rules=RULES)
    assert isinstance(algo, RulesAlgorithm)
    values = {"fast": 63_210.5, "slow": 63_190.25, "rsi": 55.5, "prev1__fast": 63_180.0,
              "prev1__slow": 63_185.0}
    rule = algo.rules.entry
    n = 20_000
    us = timeit.timeit(lambda: rule.evaluate(values), number=n) / n * 1e6
    print(f"one rule evaluation (cel-expr-python, compiled once): {us:.1f} us "
          f"[{rule.cel_source}]")
    text = rule.cel_source
    try:
        import cel  # common-expression-language

        program = cel.compile(text)
        us = timeit.timeit(lambda: program.execute(values), number=n) / n * 1e6
        print(f"  same in common-expression-language: {us:.1f} us")
    except ImportError:
        print("  common-expression-language not installed: no comparison")
    try:
        import celpy

        env = celpy.Environment()
        prog = env.program(env.compile(text))
        m = 500
        us = timeit.timeit(lambda: prog.evaluate(
            {k: celpy.celtypes.DoubleType(v) for k, v in values.items()}), number=m) / m * 1e6
        print(f"  same in cel-python (pure Python): {us:.1f} us")
    except ImportError:
        print("  cel-python not installed: no comparison")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=1_000_000)
    ap.add_argument("--live-candles", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    candles = tiled_candles(args.candles)
    n = len(candles)
    print(f"candles: {n:,} x 1m (real BTC/USDT 2024-09-21, tiled), built in "
          f"{time.perf_counter() - t0:.1f}s")
    sma_cpu, sma_orders = best_of(
        args.repeat, lambda: create_algorithm("sma-crossover",
                                              {"fastPeriod": 10, "slowPeriod": 30}), candles)
    rules_cpu, rules_orders = best_of(
        args.repeat, lambda: create_algorithm("rules", rules=RULES), candles)
    print(f"built-in sma-crossover replay: {n / sma_cpu:,.0f} candles/s of CPU "
          f"({sma_cpu:.2f} s, {sma_orders} orders)")
    print(f"rules (ema, ema, rsi) replay, bulk path: {n / rules_cpu:,.0f} candles/s of CPU "
          f"({rules_cpu:.2f} s, {rules_orders} orders)")
    print(f"rules / sma-crossover CPU time: {rules_cpu / sma_cpu:.2f}x (target: within 2x)")
    m = min(args.live_candles, n)
    live_cpu, live_orders = live_path(m, candles)
    print(f"rules, live path (per candle: indicators + CEL), {m:,} candles: "
          f"{m / live_cpu:,.0f} candles/s of CPU ({live_cpu / m * 1e6:.1f} us per candle, "
          f"{live_orders} orders)")
    evaluation_cost()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
