"""The validation's fast replay makes exactly what ``run_replay`` makes.

Real recorded candles, each built-in algorithm, and risk policies chosen so that every
rule that makes a candle matter fires somewhere: stop-losses, the daily-loss and
drawdown halts and their roll-over at midnight, the strategy tracker disabling a
strategy after losses and its timed re-enable check. The two loops must agree on every
trade, every order, every equity point and every engine event count.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import ReplayResult, run_replay
from kubetrade.marketdata.filters import load_filters
from kubetrade.marketdata.loader import LoadOptions, load_candles
from kubetrade.marketdata.timeframes import timeframe_ms
from kubetrade.validation import fast_replay
from kubetrade.validation.fast_replay import decides_on_closes, replay_fast
from tests.unit.validation._data import shared_data

CASES = [
    ("binance-BTCUSDT-1m-2024-09-21.csv", "BTC/USDT", "1m", "sma-crossover",
     {"fastPeriod": 3, "slowPeriod": 8}),
    ("freqtrade-LTCBTC-5m-2018-01.csv", "LTC/BTC", "5m", "rsi-mean-reversion",
     {"period": 5, "oversold": 20, "overbought": 60}),
    ("freqtrade-ETHBTC-5m-2018-01.csv", "ETH/BTC", "5m", "bollinger-breakout",
     {"period": 20, "stdDev": 2}),
    ("binance-BTCUSDT-1h-2024-08.csv", "BTC/USDT", "1h", "sma-crossover",
     {"fastPeriod": 5, "slowPeriod": 20}),
]
LIMITS = {
    "default": {},
    "tight": {"stop_loss_pct": Decimal("0.3"), "daily_loss_limit_pct": Decimal("0.5"),
              "max_drawdown_pct": Decimal("2"), "max_position_size_pct": Decimal(50),
              "strategy_max_consecutive_losses": 2},
    "loose": {"stop_loss_pct": Decimal(0), "daily_loss_limit_pct": Decimal(0),
              "max_drawdown_pct": Decimal(0), "strategy_max_consecutive_losses": 0},
}


def _run(case: tuple[str, str, str, str, dict[str, int]], limits: str,
         fast: bool) -> tuple[ReplayResult, TradingEngine]:
    file, symbol, tf, algorithm, params = case
    frame = load_candles(shared_data(file), LoadOptions(timeframe=tf))
    markets = {symbol: load_filters().market(symbol)}
    cash = Decimal(10_000) if symbol.endswith("USDT") else Decimal(1)
    engine = TradingEngine("t", create_algorithm(algorithm, params),
                           RiskLimits(**LIMITS[limits]), markets, cash,
                           markets[symbol].quote, timeframe_ms=timeframe_ms(tf))
    broker = PaperBroker(markets, {markets[symbol].quote: cash})
    clock = ManualClock(frame[0].ts_ms)
    seen: list[tuple[int, int]] = []
    if fast:
        result = replay_fast(engine, broker, frame, clock, symbol,
                             lambda d, t: seen.append((d, t)), 100, keep_orders=True)
        assert result is not None
    else:
        result = run_replay(engine, broker, frame, clock, lambda d, t: seen.append((d, t)),
                            symbol=symbol, progress_every=100)
    assert seen[-1] == (len(frame), len(frame))
    return result, engine


@pytest.mark.parametrize("chunk", [8192, 7], ids=["one-batch", "batches-of-7"])
@pytest.mark.parametrize("limits", sorted(LIMITS))
@pytest.mark.parametrize("case", CASES, ids=[c[3] + "-" + c[2] for c in CASES])
def test_fast_replay_makes_exactly_what_run_replay_makes(
    case: tuple[str, str, str, str, dict[str, int]], limits: str, chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the rows the engine needs are cast to text a batch at a time (8,192 on a real
    # run: more than these files hold), and the closes of held runs a slice at a time
    monkeypatch.setattr(fast_replay, "_CHUNK", chunk)
    slow, slow_engine = _run(case, limits, fast=False)
    fast, fast_engine = _run(case, limits, fast=True)
    assert fast.trades == slow.trades
    assert [(o.client_order_id, o.status, o.filled_quantity, o.average_price, o.reason)
            for o in fast.orders] == [(o.client_order_id, o.status, o.filled_quantity,
                                       o.average_price, o.reason) for o in slow.orders]
    assert fast.equity_curve == slow.equity_curve
    # the fast curve keeps held runs as cash + quantity * close (EquityValues): read in
    # order, one by one and in bulk, each value is the engine's, to the last digit
    want = [str(e) for _, e in slow.equity_curve]
    values = fast.equity_curve.values  # type: ignore[attr-defined]
    assert [str(e) for e in values] == want
    some = list(range(len(want) - 1, -1, -7))
    assert [str(values[i]) for i in some] == [want[i] for i in some]
    assert [str(e) for e in values.take(some)] == [want[i] for i in some]
    assert list(values.floats) == [float(e) for _, e in slow.equity_curve]
    assert (fast.candles, fast.rejected, fast.event_count) == (
        slow.candles, slow.rejected, slow.event_count)
    assert fast_engine.equity == slow_engine.equity
    assert fast_engine.marks == slow_engine.marks
    assert fast_engine.halts.keys() == slow_engine.halts.keys()
    assert fast_engine.tracker.enabled == slow_engine.tracker.enabled


def test_the_rules_take_the_slow_path(tmp_path: Path) -> None:
    from kubetrade.resources import load_strategy_file

    strategy = load_strategy_file(Path("examples/strategies/btc-rules.yaml"))
    spec = strategy.spec
    engine = TradingEngine("t", create_algorithm(spec.algorithm, spec.parameters,
                                                 rules=spec.rules),
                           RiskLimits(), {"BTC/USDT": load_filters().market("BTC/USDT")},
                           Decimal(10_000), timeframe_ms=60_000)
    assert not decides_on_closes(engine)
