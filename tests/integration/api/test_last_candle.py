"""The newest candle per symbol (issue 13): a runner's RunnerOutputs writes it into the
strategy summary in real Redis, and ``/api/status`` says it over HTTP, stale once
exchange data closed more than 3 timeframes ago; older summaries without the field
still read."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import default_market
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.runner.outputs import RunnerOutputs
from kubetrade.state.schema import StrategySummary
from kubetrade.state.store import StateStore
from tests.fixtures.api import ApiHandle, MakeApi
from tests.integration.api._seed import seed_strategy, strategy_manifest

NOW = 1_800_000_000_000  # a minute boundary


def _engine(name: str, symbol: str) -> TradingEngine:
    algorithm = create_algorithm("sma-crossover", {"fastPeriod": 2, "slowPeriod": 4})
    return TradingEngine(name, algorithm, RiskLimits(), {symbol: default_market(symbol)},
                         Decimal(10000), timeframe_ms=60_000)


async def _runner_saw(api: ApiHandle, clock: ManualClock, name: str, symbol: str,
                      open_ms: int, *, live: bool) -> None:
    outputs = RunnerOutputs(name, "paper", redis=api.redis, keys=api.keys,
                            store=StateStore(api.redis, api.keys, name), clock=clock,
                            metrics=RunnerMetrics(CollectorRegistry()))
    outputs.candle_seen(symbol, "1m", open_ms - 60_000, live=live)
    outputs.candle_seen(symbol, "1m", open_ms, live=live)
    await outputs.write_summary(_engine(name, symbol), breaker_open=False)


async def _status(api: ApiHandle) -> dict[str, dict[str, Any]]:
    r = await api.client.get("/api/status")
    assert r.status_code == 200, r.text
    return {x["name"]: x for x in r.json()["strategies"]}


async def test_status_shows_the_last_candle_and_marks_it_stale(make_api: MakeApi) -> None:
    clock = ManualClock(NOW)
    api = await make_api(clock=clock, dashboard_password=None)
    for name, symbol in (("btc-sma", "BTC/USDT"), ("eth-rsi", "ETH/USDT"),
                         ("sol-replay", "SOL/USDT")):
        await api.desired.put_strategy(strategy_manifest(name, symbol), "test")
    await _runner_saw(api, clock, "btc-sma", "BTC/USDT", NOW - 120_000, live=True)
    await _runner_saw(api, clock, "sol-replay", "SOL/USDT", NOW - 86_400_000, live=False)
    await seed_strategy(api.redis, api.keys, "eth-rsi", "ETH/USDT", n_trades=2)  # no field

    status = await _status(api)
    btc = status["btc-sma"]
    assert (btc["timeframe"], btc["market_data"]) == ("1m", "exchange")
    # closed 60 s ago: fresh
    assert btc["last_candles"] == [{"symbol": "BTC/USDT", "open_ms": NOW - 120_000,
                                    "close_ms": NOW - 60_000, "stale": False}]
    assert status["eth-rsi"]["last_candles"] == []  # a summary from before the field
    assert status["eth-rsi"]["market_data"] is None
    # a replay's candles are old by nature: shown, never called stale
    assert status["sol-replay"]["market_data"] == "replay"
    assert status["sol-replay"]["last_candles"][0]["stale"] is None

    clock.advance(120)  # closed 180 s ago: exactly 3 timeframes, not yet stale
    assert (await _status(api))["btc-sma"]["last_candles"][0]["stale"] is False
    clock.advance(1)
    assert (await _status(api))["btc-sma"]["last_candles"][0]["stale"] is True

    raw = await api.redis.hgetall(api.keys.summary("btc-sma"))  # type: ignore[misc]
    read = StrategySummary.from_hash({str(k): str(v) for k, v in raw.items()})
    assert read.last_candle_ms == {"BTC/USDT": NOW - 120_000}
    assert (read.timeframe, read.market_data) == ("1m", "exchange")
    assert StrategySummary.from_hash(read.to_hash()) == read
    typed = replace(read, raw={}).to_hash()  # the typed fields encoded, not what was read
    assert StrategySummary.from_hash(typed).last_candle_ms == {"BTC/USDT": NOW - 120_000}


async def test_dashboard_has_the_market_data_table(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    page = (await api.client.get("/")).text
    assert 'id="market-table"' in page
    script = (await api.client.get("/static/app.js")).text
    assert "last_candles" in script and "stale" in script
