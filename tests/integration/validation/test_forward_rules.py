"""A rules strategy validated forward (the live path: candles from the fake Binance as
market time moves, indicators updated one candle at a time, CEL per candle) trades
exactly as the replay of the same candles (the bulk path: indicators and expressions
over the whole series). The look-ahead proof for rules on the real exchange client."""

from __future__ import annotations

from pathlib import Path

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.gonogo import Criteria
from kubetrade.domain.rules.algorithm import RulesAlgorithm
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import load_candles, run_replay
from kubetrade.resources import RiskPolicySpec, Strategy
from kubetrade.validation.forward import forward
from kubetrade.validation.plan import ValidationPlan, engine_and_broker
from tests.fakes.binance import FakeBinance
from tests.integration.validation.test_forward_validation import (
    DAY_START,
    STEP,
    MarketFollowingClock,
)
from tests.unit.validation._data import shared_data


def plan(duration_s: int) -> ValidationPlan:
    strategy = Strategy.model_validate({
        "metadata": {"name": "btc-fwd-rules"},
        "spec": {
            "algorithm": "rules",
            "rules": {
                "indicators": {"fast": {"ema": {"period": 5}}, "slow": {"ema": {"period": 13}},
                               "st": {"stochastic": {"kPeriod": 9}}, "atr": {"atr": {}}},
                "entry": "crossed_above(fast, slow) && st.k < 90",
                "exit": "crossed_below(fast, slow) || close < prev(close, 1) - 3 * atr",
            },
            "symbols": ["BTC/USDT"], "timeframe": "1m",
        },
    })
    return ValidationPlan(strategy=strategy, limits=RiskPolicySpec().to_limits(),
                          criteria=Criteria(), mode="forward", duration_s=duration_s)


async def test_forward_rules_trade_like_the_bulk_replay(
    fake_binance: FakeBinance, tmp_path: Path
) -> None:
    start = DAY_START + 120 * STEP + 17_000
    clock = MarketFollowingClock(start, fake_binance)
    exchange = BinanceExchange(testnet=False, base_url=fake_binance.url, clock=clock)
    p = plan(duration_s=240 * 60)
    try:
        outcome = await forward(p, exchange, clock)
        markets = await exchange.load_markets()
    finally:
        await exchange.close()

    end = start + 240 * 60 * 1000
    recorded = load_candles(shared_data("binance-BTCUSDT-1m-2024-09-21.csv"))
    window = [c for c in recorded if c.ts_ms + STEP > start and c.ts_ms + STEP <= end]
    assert outcome.candles == len(window) == 240

    engine, broker = engine_and_broker(p, {"BTC/USDT": markets["BTC/USDT"]})
    algo = engine.strategy
    assert isinstance(algo, RulesAlgorithm)
    # the warm-up forward validation fetched: from start - (warmup + 2) candles, closed
    need = algo.warmup + 1
    since = start - (need + 1) * STEP
    warm = [c for c in recorded if c.ts_ms >= since and c.ts_ms + STEP <= start][: need + 2]
    # the replay announces warm-up and window together: one bulk computation
    algo.prepare("BTC/USDT", warm + window)
    step = algo.bind_candle("BTC/USDT")
    for c in warm:
        step(c)
    result = run_replay(engine, broker, window, ManualClock(start), symbol="BTC/USDT")
    assert outcome.trades == result.trades and len(result.trades) > 0
    assert outcome.equity_curve[1:] == result.equity_curve
