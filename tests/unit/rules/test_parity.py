"""Warm-up and look-ahead safety: the replay's bulk path and the live path give the same
signals and the same orders on the same real candles, no signal comes before every
indicator is warm, and a signal never changes when later candles are added."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from kubetrade.domain.algorithms import Algorithm, create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, Order, Side
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.rules.algorithm import RulesAlgorithm
from kubetrade.exchange.paper import PaperBroker, default_market
from kubetrade.exchange.replay import run_replay
from tests.unit.rules._candles import FILES, candles

RULE_SETS: dict[str, dict[str, Any]] = {
    "ema-rsi": {
        "indicators": {"fast": {"ema": {"period": 12}}, "slow": {"ema": {"period": 26}},
                       "rsi": {"rsi": {"period": 14}}},
        "entry": "crossed_above(fast, slow) && rsi < 70",
        "exit": "crossed_below(fast, slow) || rsi > 80",
    },
    "macd-bollinger": {
        "indicators": {"m": {"macd": {}}, "bb": {"bollinger": {"period": 20, "stdDev": 2}}},
        "entry": "crossed_above(m.line, m.signal) && close < bb.middle",
        "exit": "close > bb.upper || crossed_below(m.hist, 0)",
    },
    "stoch-adx-atr": {
        "indicators": {"st": {"stochastic": {}}, "adx": {"adx": {"period": 14}},
                       "atr": {"atr": {"period": 14}}},
        "entry": "crossed_above(st.k, st.d) && st.k < 30 && adx > 20",
        "exit": "st.k > 80 || close < prev(close, 1) - 2 * atr",
    },
    "channel-vwap-sma": {
        "indicators": {"hi": {"highest": {"period": 20}}, "lo": {"lowest": {"period": 10}},
                       "vwap": {"vwap": {"period": 30}}, "trend": {"sma": {"period": 50}}},
        "entry": "close > prev(hi, 1) && close > vwap && (trend > prev(trend, 5) ? true : "
                 "volume > 2 * prev(volume, 1))",
        "exit": "close < prev(lo, 1) || -(close - vwap) > 0.01 * close",
    },
}


def live_signals(algo: Algorithm[Any, Any], cs: list[Candle]) -> list[int]:
    step = algo.bind_candle("X")
    codes = {Side.BUY: 1, Side.SELL: -1, None: 0}
    return [codes[step(c)] for c in cs]


def rules(name: str) -> RulesAlgorithm:
    algo = create_algorithm("rules", rules=RULE_SETS[name])
    assert isinstance(algo, RulesAlgorithm)
    return algo


@pytest.mark.parametrize("file", FILES)
@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_bulk_and_live_give_the_same_signals(name: str, file: str) -> None:
    cs = candles(file)
    live = live_signals(rules(name), cs)
    in_bulk = rules(name).bulk_signals(cs)
    assert live == in_bulk
    assert any(live), "the rules never fired: the comparison would prove nothing"


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_no_signal_before_every_indicator_is_warm(name: str) -> None:
    spec = {**RULE_SETS[name], "entry": "true", "exit": "false"}
    cs = candles(FILES[0])
    algo = create_algorithm("rules", rules=spec)
    warm = algo.warmup
    for signals in (live_signals(algo, cs), create_algorithm("rules", rules=spec)
                    .bulk_signals(cs)):  # type: ignore[attr-defined]
        assert signals.index(1) == warm - 1  # the first signal comes on candle `warmup`
    longest = max({"ema-rsi": 26, "macd-bollinger": 34, "stoch-adx-atr": 28,
                   "channel-vwap-sma": 50}[name], 1)
    assert warm >= longest


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_later_candles_never_change_an_earlier_signal(name: str) -> None:
    cs = candles(FILES[1])
    full = rules(name).bulk_signals(cs)
    for cut in (40, 333, 1000):
        assert rules(name).bulk_signals(cs[:cut]) == full[:cut]


def test_restart_from_a_snapshot_continues_identically() -> None:
    cs = candles(FILES[0])
    whole = live_signals(rules("stoch-adx-atr"), cs)
    first = rules("stoch-adx-atr")
    head = live_signals(first, cs[:700])
    second = rules("stoch-adx-atr")
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert head + live_signals(second, cs[700:]) == whole


def _orders(algo: Algorithm[Any, Any], cs: list[Candle], bulk: bool) -> list[tuple[Any, ...]]:
    symbol = "BTC/USDT"
    if not bulk:
        algo.prepare = lambda *_: None  # type: ignore[method-assign]
    markets = {symbol: default_market(symbol)}
    cash = Decimal(10_000)
    limits = RiskLimits(max_position_size_pct=Decimal(10), stop_loss_pct=Decimal(2))
    engine = TradingEngine("parity", algo, limits, markets, cash)
    broker = PaperBroker(markets, {"USDT": cash})
    result = run_replay(engine, broker, cs, ManualClock(cs[0].ts_ms), symbol=symbol)
    orders: list[Order] = result.orders
    return [(o.created_ms, o.side, o.quantity, o.reason) for o in orders]


@pytest.mark.parametrize("name", [*sorted(RULE_SETS), "sma-crossover", "plugin-like"])
def test_replay_and_live_path_give_the_same_orders(name: str) -> None:
    cs = candles(FILES[0])

    def make() -> Algorithm[Any, Any]:
        if name == "sma-crossover":
            return create_algorithm(name, {"fastPeriod": 5, "slowPeriod": 20})
        if name == "plugin-like":
            return _HighLowBreakout()
        return rules(name)

    replayed = _orders(make(), cs, bulk=True)
    live = _orders(make(), cs, bulk=False)
    assert replayed == live
    assert len(live) >= 2


class _HighLowBreakout(RulesAlgorithm):
    """An algorithm that reads whole candles through on_candle, like a plugin would."""

    def __init__(self) -> None:
        from kubetrade.domain.rules.spec import RulesSpec

        super().__init__(RulesSpec.model_validate({
            "indicators": {"hi": {"highest": {"period": 15}}, "lo": {"lowest": {"period": 15}}},
            "entry": "close > prev(hi, 1)", "exit": "close < prev(lo, 1)"}))


def test_a_snapshot_of_other_rules_is_not_loaded() -> None:
    """After a spec change the runner restores the old snapshot: the new rules must warm
    up again, not read indicator state computed for other indicators."""
    cs = candles(FILES[0])
    old = rules("ema-rsi")
    live_signals(old, cs[:300])
    new = rules("stoch-adx-atr")
    new.restore(json.loads(json.dumps(old.snapshot())))
    fresh = rules("stoch-adx-atr")
    assert live_signals(new, cs[300:]) == live_signals(fresh, cs[300:])


def test_an_unannounced_candle_hands_over_to_the_live_path() -> None:
    """A replay that announced its candles, then feeds one it did not announce (and more
    after it): the signals are those of the live path over what was really fed."""
    cs = candles(FILES[0])
    fed = cs[:500] + cs[600:700] + cs[520:540]  # a jump ahead, then older candles
    algo = rules("ema-rsi")
    algo.prepare("X", cs[:800])
    step = algo.bind_candle("X")  # bound before the hand-over, as the engine does
    codes = {Side.BUY: 1, Side.SELL: -1, None: 0}
    got = [codes[step(c)] for c in fed]
    assert got == live_signals(rules("ema-rsi"), fed)
