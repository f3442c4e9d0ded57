"""The market-data metrics of issue 13: ``kubetrade_last_candle_age_seconds`` grows
with the runner's clock while no candle arrives, and ``kubetrade_candles_recorded_total``
counts each candle a recorder wrote once (recorders report cumulative totals)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from kubetrade.cli._local.stopping import GatedMarket
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle
from kubetrade.marketdata.recording import recording_source
from kubetrade.runner.market import ReplaySource, recorder_of
from kubetrade.runner.metrics import RunnerMetrics

START = 1_800_000_000_000  # a minute boundary


def _age(registry: CollectorRegistry, symbol: str, timeframe: str = "1m") -> float | None:
    return registry.get_sample_value(
        "kubetrade_last_candle_age_seconds", {"symbol": symbol, "timeframe": timeframe})


def test_age_of_the_last_candle_follows_the_clock_until_the_next_one() -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    clock = ManualClock(START + 65_000)  # 5 s after the close of the candle below
    assert _age(registry, "BTC/USDT") is None
    metrics.candle_consumed("BTC/USDT", "1m", 60_000, START + 60_000, clock)
    assert _age(registry, "BTC/USDT") == 5.0
    clock.advance(200)  # no candle for 200 s more: the gauge grows (what the alert reads)
    assert _age(registry, "BTC/USDT") == 205.0
    # an older candle (another runner on the symbol, a back-fill) does not make it younger
    metrics.candle_consumed("BTC/USDT", "1m", 60_000, START, clock)
    assert _age(registry, "BTC/USDT") == 205.0
    metrics.candle_consumed("BTC/USDT", "1m", 60_000, START + 240_000, clock)
    assert _age(registry, "BTC/USDT") == 25.0
    assert registry.get_sample_value(
        "kubetrade_candle_timeframe_seconds", {"symbol": "BTC/USDT", "timeframe": "1m"}) == 60.0


def test_age_is_never_negative() -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    metrics.candle_consumed("ETH/USDT", "1h", 3_600_000, START + 3_600_000, ManualClock(START))
    assert _age(registry, "ETH/USDT", "1h") == 0.0


def test_recorded_candles_counted_once_per_recorder() -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)

    def recorded(symbol: str) -> float | None:
        return registry.get_sample_value("kubetrade_candles_recorded_total", {"symbol": symbol})

    metrics.candles_written(1, {"BTC/USDT": 15})
    metrics.candles_written(1, {"BTC/USDT": 15})  # same total again: nothing new
    assert recorded("BTC/USDT") == 15
    metrics.candles_written(1, {"BTC/USDT": 30, "ETH/USDT": 15})
    metrics.candles_written(2, {"BTC/USDT": 15})  # a second recorder in the process
    assert recorded("BTC/USDT") == 45
    assert recorded("ETH/USDT") == 15


def test_the_runner_finds_the_recorder_under_its_wrappers(tmp_path: Path) -> None:
    # kubetrade local gates the market source (GatedMarket): the recorder is still found
    clock = ManualClock(START)
    inner = ReplaySource({"BTC/USDT": [Candle(START, *(Decimal(1),) * 5)]}, clock, 0)
    inner.kind = "exchange"  # stands in for exchange data: a replay is never recorded
    recording = recording_source(inner, tmp_path, "1m", "pod-a", clock)
    gated = GatedMarket(recording, asyncio.Event())
    assert recorder_of(gated) is recording.recorder
    assert recorder_of(inner) is None
