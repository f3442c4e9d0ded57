"""Strategy parameters, indicator maths and the no-look-ahead guarantee."""

from __future__ import annotations

import itertools
import math
import statistics
from decimal import Decimal

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.indicators import RollingStats, WilderRSI
from kubetrade.domain.models import Candle, Side
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.strategies import ALGORITHMS, create_strategy
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import bundled_candles, load_candles, run_replay

BTC = "BTC/USDT"


def test_algorithms_and_camel_case_parameters() -> None:
    assert set(ALGORITHMS) == {"sma-crossover", "rsi-mean-reversion", "bollinger-breakout"}
    p = ALGORITHMS["sma-crossover"].model_validate({"fastPeriod": 5, "slowPeriod": 9})
    assert p.model_dump(by_alias=True) == {"fastPeriod": 5, "slowPeriod": 9}
    schema = ALGORITHMS["bollinger-breakout"].model_json_schema(by_alias=True)
    assert "stdDev" in schema["properties"]
    assert schema["properties"]["stdDev"]["description"]
    s = create_strategy("rsi-mean-reversion", {"period": 7, "oversold": 25, "overbought": 80})
    assert s.parameters() == {"period": 7, "oversold": 25.0, "overbought": 80.0}


@pytest.mark.parametrize(
    ("algorithm", "params", "match"),
    [
        ("sma-crossover", {"fastPeriod": 30, "slowPeriod": 10}, "slowPeriod .* greater"),
        ("sma-crossover", {"fastPeriod": 0}, r"parameters\.fastPeriod"),
        ("rsi-mean-reversion", {"oversold": 80, "overbought": 20}, "overbought"),
        ("bollinger-breakout", {"stdDev": -1}, r"parameters\.stdDev"),
        ("bollinger-breakout", {"std": 2}, r"parameters\.std"),
        ("macd", {}, "unknown algorithm 'macd'"),
    ],
)
def test_bad_parameters_name_the_field_and_rule(algorithm: str, params: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        create_strategy(algorithm, params)


def test_rolling_stats_match_naive_computation() -> None:
    closes = [float(c.close) for c in load_candles(bundled_candles(BTC, "1m"))]  # type: ignore[arg-type]
    rs = RollingStats(20)
    for i, x in enumerate(closes):
        rs.update(x)
        if i >= 19:
            window = closes[i - 19 : i + 1]
            assert math.isclose(rs.mean, statistics.fmean(window), rel_tol=1e-12)
            assert math.isclose(rs.std, statistics.pstdev(window), rel_tol=1e-6, abs_tol=1e-6)


def test_wilder_rsi_matches_textbook_recursion() -> None:
    closes = [float(c.close) for c in load_candles(bundled_candles(BTC, "1h"))]  # type: ignore[arg-type]
    n = 14
    rsi = WilderRSI(n)
    for x in closes[: n + 1]:
        rsi.update(x)
    changes = [b - a for a, b in itertools.pairwise(closes)]
    ag = sum(max(c, 0) for c in changes[:n]) / n
    al = sum(max(-c, 0) for c in changes[:n]) / n
    assert math.isclose(rsi.value, 100 - 100 / (1 + ag / al), rel_tol=1e-9)
    for i in range(n, len(changes)):
        ag = (ag * (n - 1) + max(changes[i], 0)) / n
        al = (al * (n - 1) + max(-changes[i], 0)) / n
        rsi.update(closes[i + 1])
        assert math.isclose(rsi.value, 100 - 100 / (1 + ag / al), rel_tol=1e-9)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_strategy_signals_on_real_candles(algorithm: str) -> None:
    candles = load_candles(bundled_candles(BTC, "1h"))  # type: ignore[arg-type]
    s = create_strategy(algorithm, {})
    sides = [s.update(BTC, float(c.close)) for c in candles]
    assert Side.BUY in sides and Side.SELL in sides
    assert all(x is None for x in sides[: s.warmup - 1])


class _Spy:
    """Wraps a strategy and records, at each decision, how many candles existed."""

    def __init__(self, inner, feed_count) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.feed_count = feed_count
        self.calls: list[tuple[float, int]] = []

    def update(self, symbol: str, close: float):  # type: ignore[no-untyped-def]
        self.calls.append((close, self.feed_count()))
        return self.inner.update(symbol, close)

    def snapshot(self):  # type: ignore[no-untyped-def]
        return self.inner.snapshot()


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_no_look_ahead(algorithm: str) -> None:
    """Decisions use only closed candles: the strategy is called once per candle with
    that candle's close, while that candle (and no later one) is being handled, and
    changing every later candle changes none of the earlier signals or orders."""
    candles = load_candles(bundled_candles(BTC, "1m"))  # type: ignore[arg-type]
    fed: list[Candle] = []

    def run(cs: list[Candle]) -> list[tuple[int, str]]:
        m = {BTC: default_market(BTC)}
        spy = _Spy(create_strategy(algorithm, {}), lambda: len(fed))
        eng = TradingEngine("x", spy, RiskLimits(), m, Decimal(10000))  # type: ignore[arg-type]
        broker = PaperBroker(m, {"USDT": Decimal(10000)})
        orig = eng.on_candle

        def feed(symbol, candle, now_ms=None):  # type: ignore[no-untyped-def]
            fed.append(candle)
            return orig(symbol, candle, now_ms)

        eng.on_candle = feed  # type: ignore[method-assign]
        fed.clear()
        r = run_replay(eng, broker, cs, ManualClock())
        # the i-th decision happened while candle i was handled, with candle i's close
        assert len(spy.calls) == len(cs)
        for i, (close, seen) in enumerate(spy.calls):
            assert seen == i + 1
            assert close == float(cs[i].close)
        return [(o.created_ms, str(o.side)) for o in r.orders]

    base = run(candles)
    cut = 900
    tampered = candles[:cut] + [
        Candle(c.ts_ms, c.open * 2, c.high * 2, c.low * 2, c.close * 2, c.volume)
        for c in candles[cut:]
    ]
    changed = run(tampered)
    cut_ms = candles[cut].ts_ms
    assert [o for o in base if o[0] <= cut_ms] == [o for o in changed if o[0] <= cut_ms]
