"""The market-data cases of ../shared/cases (copied to tests/data/cases): each refused or
handled as its README.txt says a correct product does."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, MarketInfo
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import run_replay
from kubetrade.marketdata import CandleDataError, LoadOptions, load_candles
from kubetrade.marketdata.filters import format_price, load_filters
from kubetrade.resources import RiskPolicySpec, load_strategy_file
from tests.marketdata import market_file

CASES = Path(__file__).resolve().parents[2] / "data" / "cases"


def refusal(path: Path, options: LoadOptions | None = None) -> CandleDataError:
    with pytest.raises(CandleDataError) as info:
        load_candles(path, options)
    return info.value


def test_candles_nan_refused_naming_file_line_rule() -> None:
    path = CASES / "candles-nan" / "candles_nan.csv"
    err = refusal(path)
    assert (err.rule, err.line) == ("not-finite", 21)
    assert str(err).startswith(f"{path}:21: not-finite: open is nan")
    assert "1726877940000" in str(err)
    assert len(load_candles(CASES / "candles-nan" / "candles_clean.csv")) == 60


def test_seconds_timestamps_refused_and_convertible() -> None:
    d = CASES / "seconds-timestamps"
    err = refusal(d / "candles_seconds.csv")
    assert err.rule == "time-unit" and err.line == 2
    assert "looks like seconds" in str(err) and "2024-09-21T00:00:00Z" in str(err)
    converted = load_candles(d / "candles_seconds.csv", LoadOptions(time_unit="s"))
    reference = load_candles(d / "candles_ms.csv", LoadOptions(timeframe="1m"))
    assert converted.to_list() == reference.to_list()
    assert len(reference) == 120 and reference.first_ms == 1726876800000
    assert converted.report.timeframe == "1m"  # 60,000 ms apart, not 60


def test_conflicting_duplicates_refused_or_the_complete_row_kept() -> None:
    d = CASES / "conflicting-duplicates"
    err = refusal(d / "candles_dup.csv")
    assert (err.rule, err.line) == ("conflicting-duplicate", 68) and "line 67" in str(err)
    kept = load_candles(d / "candles_dup.csv", LoadOptions(duplicates="last"))
    clean = load_candles(d / "candles_clean.csv")
    assert kept.to_list() == clean.to_list()
    five = next(c for c in kept if c.ts_ms == 1726880700000)
    assert five == Candle(1726880700000, Decimal("63170.02"), Decimal("63170.02"),
                          Decimal("63142.0"), Decimal("63150.51"), Decimal("4.1113"))
    err = refusal(d / "candles_refreshed_1h.csv")
    assert (err.rule, err.line) == ("conflicting-duplicate", 50)
    last = load_candles(d / "candles_refreshed_1h.csv", LoadOptions(duplicates="last"))[-1]
    assert (last.high, last.low, last.close, last.volume) == (
        Decimal("61782"), Decimal("61311"), Decimal("61498.33"), Decimal("1293.60445"))


def test_timeframe_mismatch_refused_both_ways_and_resampled() -> None:
    one_minute = market_file("binance-BTCUSDT-1m-2024-09-21.csv")
    one_hour = market_file("binance-BTCUSDT-1h-2024-08.csv")
    strategy = load_strategy_file(CASES / "timeframe-mismatch" / "btc-sma-1h.yaml")
    assert strategy.spec.timeframe == "1h"
    err = refusal(one_minute, LoadOptions(timeframe=strategy.spec.timeframe))
    assert err.rule == "timeframe-mismatch"
    assert "candles are 1m apart" in str(err) and "timeframe is 1h" in str(err)
    err = refusal(one_hour, LoadOptions(timeframe="1m"))
    assert err.rule == "timeframe-mismatch" and "coarser 1h" in str(err)
    hourly = load_candles(one_minute, LoadOptions(timeframe="1h", resample=True))
    assert len(hourly) == 24 and hourly.last_ms == 1726959600000  # 2024-09-21T23:00Z
    assert hourly.report.resampled_from == "1m"
    assert len(load_candles(one_hour, LoadOptions(timeframe="1h"))) == 744


def _trades(candles: list[Candle], market: MarketInfo) -> int:
    strategy = load_strategy_file(CASES / "tiny-price-shib" / "shib-bollinger-breakout.yaml")
    spec = strategy.spec
    cash = Decimal(spec.initial_capital)
    engine = TradingEngine(strategy.metadata.name,
                           create_algorithm(spec.algorithm, spec.parameters),
                           RiskPolicySpec().to_limits(), {market.symbol: market}, cash,
                           market.quote, timeframe_ms=60_000)
    broker = PaperBroker({market.symbol: market}, {market.quote: cash})
    result = run_replay(engine, broker, candles, ManualClock(candles[0].ts_ms),
                        symbol=market.symbol)
    assert result.rejected == 0
    return len(result.trades)


def test_tiny_price_shib_keeps_its_digits_and_trades_with_real_filters() -> None:
    d = CASES / "tiny-price-shib"
    tiny = load_candles(d / "shib_tiny.csv", LoadOptions(timeframe="1m"))
    big = load_candles(d / "shib_big.csv", LoadOptions(timeframe="1m"))
    assert tiny[0].open == Decimal("0.0000141342") and big[0].open == Decimal("1413.42")
    shib = load_filters().market("SHIB/USDT")
    assert (shib.price_step, shib.qty_step, shib.min_notional) == (
        Decimal("0.00000001"), Decimal("1"), Decimal("5"))
    assert format_price(tiny[0].close, shib) == "0.00001414"
    # scale-invariant strategy, real tick: the tiny file trades like the big one (7)
    assert _trades(tiny.to_list(), shib) == 7
