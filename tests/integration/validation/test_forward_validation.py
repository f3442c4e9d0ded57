"""Forward validation (`--duration`) against the fake Binance serving real BTC/USDT
candles as market time moves: each candle that closes inside the window is traded once,
in order, through exactly the code a replay uses, so a replay of those same candles
(after the same warm-up) produces the same trades and equity.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.gonogo import Criteria
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import load_candles, run_replay
from kubetrade.resources import RiskPolicySpec, Strategy
from kubetrade.validation.forward import forward
from kubetrade.validation.plan import ValidationPlan, engine_and_broker
from kubetrade.validation.report import write_report
from kubetrade.validation.run import finish_report
from tests.fakes.binance import FakeBinance
from tests.unit.validation._data import shared_data

DAY_START = 1_726_876_800_000  # 2024-09-21 00:00 UTC, first candle of the recorded day
STEP = 60_000


class MarketFollowingClock(ManualClock):
    """Sleeping moves our time and the fake exchange's market time together, so
    candles close as they would live, without waiting."""

    def __init__(self, start_ms: int, fake: FakeBinance) -> None:
        super().__init__(start_ms)
        self.fake = fake
        fake.set_market_time(start_ms)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.fake.set_market_time(self.now_ms())
        await asyncio.sleep(0)


def plan(duration_s: int) -> ValidationPlan:
    strategy = Strategy.model_validate({
        "metadata": {"name": "btc-fwd"},
        "spec": {"algorithm": "sma-crossover", "parameters": {"fastPeriod": 3, "slowPeriod": 8},
                 "symbols": ["BTC/USDT"], "timeframe": "1m"},
    })
    return ValidationPlan(strategy=strategy, limits=RiskPolicySpec().to_limits(),
                          criteria=Criteria(), mode="forward", duration_s=duration_s)


async def test_forward_run_trades_each_closed_candle_once_like_a_replay(
    fake_binance: FakeBinance, tmp_path: Path
) -> None:
    start = DAY_START + 120 * STEP + 17_000  # mid-minute, as a real start would be
    clock = MarketFollowingClock(start, fake_binance)
    exchange = BinanceExchange(testnet=False, base_url=fake_binance.url, clock=clock)
    seen: list[float] = []
    p = plan(duration_s=240 * 60)
    try:
        outcome = await forward(p, exchange, clock, progress=seen.append)
        markets = await exchange.load_markets()
    finally:
        await exchange.close()

    end = start + 240 * 60 * 1000
    recorded = load_candles(shared_data("binance-BTCUSDT-1m-2024-09-21.csv"))
    window = [c for c in recorded if c.ts_ms + STEP > start and c.ts_ms + STEP <= end]
    assert outcome.candles == len(window) == 240
    assert outcome.data_start_ms == window[0].ts_ms
    assert seen[-1] == 240 * 60 * 1000 and seen == sorted(seen)
    times = [t for t, _ in outcome.equity_curve]
    assert times == sorted(set(times))
    assert times[-1] == window[-1].ts_ms + STEP

    # the same candles, replayed after the same warm-up, give the same trades and equity
    engine, broker = engine_and_broker(p, {"BTC/USDT": markets["BTC/USDT"]})
    warm = [c for c in recorded if c.ts_ms + STEP <= start][-(engine.strategy.warmup + 1):]
    for c in warm:
        engine.strategy.update("BTC/USDT", float(c.close))
    result = run_replay(engine, broker, window, ManualClock(start), symbol="BTC/USDT")
    assert outcome.trades == result.trades and len(result.trades) > 0
    assert outcome.equity_curve[1:] == result.equity_curve
    assert outcome.equity_curve[0] == (start, Decimal(10000))

    report = finish_report(p, outcome, ["BTC/USDT"], start, end)
    assert report["run"]["mode"] == "forward" and report["run"]["duration_seconds"] == 14400
    assert report["metrics"]["trades"] == len(result.trades)
    path = write_report(report, tmp_path, end)
    assert path.exists()


async def test_exchange_errors_while_polling_are_retried(fake_binance: FakeBinance) -> None:
    start = DAY_START + 60 * STEP
    clock = MarketFollowingClock(start, fake_binance)
    exchange = BinanceExchange(testnet=False, base_url=fake_binance.url, clock=clock)
    try:
        await exchange.load_markets()
        fake_binance.fail_requests(count=3, path="/api/v3/klines", status=503)
        outcome = await forward(plan(duration_s=30 * 60), exchange, clock)
    finally:
        await exchange.close()
    # warm-up failed once and polls failed twice, yet no closed candle was lost
    assert outcome.candles == 30
