"""`kubetrade local`'s replay goes through the one loader with the Strategy's timeframe:
the hourly strategy of the timeframe-mismatch case gets the shipped 1h file, and a
file of another spacing is refused instead of traded as if it were hourly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubetrade.domain.clock import ManualClock
from kubetrade.marketdata import CandleDataError
from kubetrade.runner.assembly import RunnerEnv, build_market, replay_paths
from kubetrade.runner.market import ReplaySource
from kubetrade.runner.spec import RunnerSpec
from tests.marketdata import market_file

STRATEGIES = Path(__file__).resolve().parents[2] / "data" / "cases" / "timeframe-mismatch" / \
    "strategies"


def spec(name: str) -> RunnerSpec:
    doc = next(d for d in yaml.safe_load_all((STRATEGIES / name).read_text())
               if d and d.get("kind") == "Strategy")
    return RunnerSpec.from_manifest(doc)


def test_bundled_replay_follows_the_strategy_timeframe() -> None:
    hourly, minutely = spec("btc-sma-hourly.yaml"), spec("btc-sma.yaml")
    assert hourly.timeframe == "1h" and minutely.timeframe == "1m"
    assert replay_paths(hourly, "replay:bundled")["BTC/USDT"].name == \
        "binance-BTCUSDT-1h-2024-08.csv"
    assert replay_paths(minutely, "replay:bundled")["BTC/USDT"].name == \
        "binance-BTCUSDT-1m-2024-09-21.csv"
    market = build_market(hourly, RunnerEnv(market_data="replay:bundled", replay_interval=0),
                          ManualClock(0), None)
    assert isinstance(market, ReplaySource)
    candles = market.series["BTC/USDT"]
    assert len(candles) == 744 and candles[1].ts_ms - candles[0].ts_ms == 3_600_000


def test_minute_file_refused_for_an_hourly_strategy() -> None:
    env = RunnerEnv(market_data=f"replay:{market_file('binance-BTCUSDT-1m-2024-09-21.csv')}",
                    replay_interval=0)
    with pytest.raises(CandleDataError) as info:
        build_market(spec("btc-sma-hourly.yaml"), env, ManualClock(0), None)
    assert info.value.rule == "timeframe-mismatch"


def test_replay_from_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetrade.marketdata import LoadOptions, frame_from_candles, load_candles
    from kubetrade.marketdata.store import CandleStore, SeriesKey

    hourly = spec("btc-sma-hourly.yaml")
    monkeypatch.setenv("KUBETRADE_DATADIR", str(tmp_path))
    with pytest.raises(ValueError, match="no BTC/USDT 1h candles under"):
        replay_paths(hourly, "replay:store")
    minutes = load_candles(market_file("binance-BTCUSDT-1m-2024-09-21.csv"),
                           LoadOptions(timeframe="1h", resample=True))
    CandleStore(tmp_path).append(SeriesKey("binance", "BTC/USDT", "1h"),
                                 frame_from_candles(minutes.to_list(), "test"))
    market = build_market(hourly, RunnerEnv(market_data="replay:store", replay_interval=0),
                          ManualClock(0), None)
    assert isinstance(market, ReplaySource)
    assert market.series["BTC/USDT"] == minutes.to_list()
