"""Strategy parameters, indicator maths and the no-look-ahead guarantee."""

from __future__ import annotations

import itertools
import math
import statistics
from decimal import Decimal

import pytest

from kubetrade.domain.algorithms import ALGORITHMS, create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.indicators import RollingStats, WilderRSI
from kubetrade.domain.models import Candle, Side
from kubetrade.domain.risk import RiskLimits
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
    s = create_algorithm("rsi-mean-reversion", {"period": 7, "oversold": 25, "overbought": 80})
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
        create_algorithm(algorithm, params)


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
    s = create_algorithm(algorithm, {})
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
        spy = _Spy(create_algorithm(algorithm, {}), lambda: len(fed))
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


def _signals(
    algorithm: str, params: dict[str, float], closes: list[float]
) -> list[tuple[int, Side]]:
    s = create_algorithm(algorithm, params)
    out: list[tuple[int, Side]] = []
    for i, c in enumerate(closes):
        sig = s.update(BTC, c)
        if sig is not None:
            out.append((i, sig))
    return out


def test_rsi_signals_once_per_excursion() -> None:
    zigzag = [100.0 + (i % 2) for i in range(20)]  # RSI near 50
    down = [zigzag[-1] - 2 * (i + 1) for i in range(10)]
    up = [down[-1] + 2 * (i + 1) for i in range(20)]
    sigs = _signals("rsi-mean-reversion", {"period": 5}, zigzag + down + up)
    assert [s for _, s in sigs] == [Side.BUY, Side.SELL]
    assert 20 <= sigs[0][0] < 30 and sigs[1][0] >= 30


def test_bollinger_breakout_buys_the_break_and_exits_below_the_middle() -> None:
    flat = [100.0 + 0.1 * (i % 2) for i in range(25)]
    sigs = _signals("bollinger-breakout", {"period": 20, "stdDev": 2},
                    [*flat, 103.0, 104.0, 105.0, 99.0])
    # (closes below the middle band say SELL even when flat; the engine ignores those)
    buys = [i for i, s in sigs if s is Side.BUY]
    assert buys == [25]
    assert sigs[-1] == (28, Side.SELL)
    assert all(s is Side.BUY for i, s in sigs if 25 <= i < 28)


def test_sma_crossover_signals_on_the_cross_only() -> None:
    closes = [10.0] * 5 + [11.0, 12.0, 13.0] + [9.0, 8.0, 7.0]
    sigs = _signals("sma-crossover", {"fastPeriod": 2, "slowPeriod": 4}, closes)
    # at 8: fast (13+9)/2 = 11 < slow (11+12+13+9)/4 = 11.25
    assert sigs == [(5, Side.BUY), (8, Side.SELL)]
