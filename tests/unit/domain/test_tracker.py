"""The strategy tracker: disable after consecutive losses, shadow trades, re-enable rule."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import Side
from kubetrade.domain.tracker import StrategyTracker

from ._helpers import BTC, MIN, candle, make, step

B, S = Side.BUY, Side.SELL
HOUR = 3_600_000


def test_disables_after_n_consecutive_losses_and_a_win_resets_the_count() -> None:
    t = StrategyTracker(3, Decimal(1))
    assert t.on_trade(Decimal(-1), 1) is None
    assert t.on_trade(Decimal(-1), 2) is None
    assert t.on_trade(Decimal(5), 3) is None  # a win resets
    assert t.on_trade(Decimal(-1), 4) is None
    assert t.on_trade(Decimal(-1), 5) is None
    change = t.on_trade(Decimal(-1), 6)
    assert change is not None and not change.enabled and not t.enabled
    assert "3 consecutive losing trades" in change.reason
    assert t.next_check_ms == 6 + HOUR


def test_zero_max_losses_never_disables() -> None:
    t = StrategyTracker(0, Decimal(1))
    for i in range(50):
        assert t.on_trade(Decimal(-1), i) is None
    assert t.enabled


def test_re_enabled_at_check_when_shadow_trades_made_money() -> None:
    t = StrategyTracker(1, Decimal(2), fee_rate=Decimal("0.001"))
    t.on_trade(Decimal(-1), 0)
    t.on_shadow_signal(BTC, True, Decimal(100))
    t.on_shadow_signal(BTC, False, Decimal(105))  # +5% - 0.2% fees
    assert t.check(2 * HOUR - 1) is None  # not yet time
    change = t.check(2 * HOUR)
    assert change is not None and change.enabled and t.enabled
    assert t.consecutive_losses == 0


def test_stays_disabled_when_shadow_trades_lost_or_were_absent_and_window_restarts() -> None:
    t = StrategyTracker(1, Decimal(1))
    t.on_trade(Decimal(-1), 0)
    change = t.check(HOUR)  # no shadow trade at all
    assert change is not None and not change.enabled and "stays disabled" in change.reason
    assert t.next_check_ms == 2 * HOUR
    t.on_shadow_signal(BTC, True, Decimal(100))
    t.on_shadow_signal(BTC, False, Decimal("100.1"))  # +0.1% < 0.2% fees: a net loss
    change = t.check(2 * HOUR)
    assert change is not None and not change.enabled
    assert not t.enabled and t.shadow_trades == 0


def test_person_can_re_enable() -> None:
    t = StrategyTracker(1, Decimal(24))
    t.on_trade(Decimal(-1), 0)
    change = t.enable(5, by="carol")
    assert change is not None and change.enabled and "carol" in change.reason


def test_engine_disables_strategy_shadows_signals_and_re_enables() -> None:
    # Two losing round trips disable it; then it trades in shadow; after 1h its shadow
    # round trip made money, so it comes back and its next BUY is a real order.
    script = {0: B, 1: S, 2: B, 3: S, 4: B, 5: S, 70: B}
    eng, broker = make(script, strategy_max_consecutive_losses=2,
                       strategy_re_enable_check_hours=Decimal(1), price_collar_pct=0,
                       stop_loss_pct=0, daily_loss_limit_pct=0, max_drawdown_pct=0)
    prices = [100, 99, 100, 99, 100, 110] + [110] * 70
    real: list[tuple[int, Side]] = []
    for i, p in enumerate(prices):
        orders, _ = step(eng, broker, BTC, candle(i, p))
        real.extend((i, o.side) for o in orders)
    assert real[:4] == [(0, B), (1, S), (2, B), (3, S)]
    events = eng.drain_events()
    actions = [e.action for e in events]
    disabled = [e for e in events if e.kind == "strategy_disabled"]
    assert disabled and disabled[0].severity == "warning"
    assert actions.count("shadow_signal") == 2
    reenabled = [e for e in events if e.kind == "strategy_reenabled"]
    assert reenabled, actions
    assert (70, B) in real
    assert eng.summary()["phase"] == "Running"


def test_engine_phase_shows_disabled() -> None:
    eng, broker = make({0: B, 1: S}, strategy_max_consecutive_losses=1,
                       price_collar_pct=0)
    step(eng, broker, BTC, candle(0, 100))
    step(eng, broker, BTC, candle(1, 90))
    assert eng.summary()["phase"] == "Disabled"
    assert not eng.summary()["strategy_enabled"]
    eng.enable_strategy(by="dave", ts_ms=2 * MIN)
    assert eng.summary()["phase"] == "Running"
