"""The re-enable message says what the shadow trades returned (issue 14 item 7: it said
"returned 0.0000%" because the return was reset before the text was formatted)."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.tracker import StrategyTracker

HOUR = 3_600_000


def test_re_enable_reason_states_the_shadow_return() -> None:
    t = StrategyTracker(1, Decimal(2), fee_rate=Decimal("0.001"), min_shadow_trades=1)
    t.on_trade(Decimal(-1), 0)
    t.on_shadow_signal("BTC/USDT", True, Decimal(100))
    t.on_shadow_signal("BTC/USDT", False, Decimal(105))  # +5% - 0.2% fees = 4.8%
    change = t.check(2 * HOUR)
    assert change is not None and change.enabled
    assert "returned 4.8000% over 1 trades" in change.reason
    assert change.detail["shadow_return"] == "0.048"
    assert t.shadow_return == 0  # and the next disabled period starts from zero
