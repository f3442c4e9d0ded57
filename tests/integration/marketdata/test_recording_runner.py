"""A runner's exchange market data is recorded into the store when KUBETRADE_DATADIR is
set: the real ccxt client on the fake Binance replaying the recording as now."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubetrade.domain.clock import SystemClock
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.marketdata.recording import RecordingSource
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.runner.assembly import RunnerEnv, build_market
from kubetrade.runner.spec import RunnerSpec
from tests.fakes.binance import FakeBinance


async def test_consumed_candles_appear_in_the_store(fake_binance: FakeBinance,
                                                    tmp_path: Path) -> None:
    fake_binance.run_market_live(warmup_minutes=60)
    clock = SystemClock()
    client = BinanceExchange(base_url=fake_binance.url, clock=clock)
    spec = RunnerSpec(name="btc-sma", algorithm="sma-crossover", parameters={},
                      symbols=["BTC/USDT"], timeframe="1m")
    env = RunnerEnv(market_data="exchange", candle_dir=str(tmp_path), pod_name="pod-a")
    source = build_market(spec, env, clock, client)
    assert isinstance(source, RecordingSource)
    seen = []
    now = clock.now_ms()
    cursor = {"BTC/USDT": now - now % 60_000 - 50 * 60_000}  # resume: 49 closed to back-fill
    try:
        stream = source.candles(cursor)

        async def take() -> None:
            async for _, candle in stream:
                seen.append(candle)
                if len(seen) == 40:
                    break

        await asyncio.wait_for(take(), timeout=60)
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await client.close()
    stored = CandleStore(tmp_path).load(SeriesKey("binance", "BTC/USDT", "1m")).to_list()
    assert stored == seen
    assert source.recorder.stats.recorded_total["BTC/USDT"] == 40
