"""GET /api/settings' tradingMode is what the strategies trade, not a variable."""

from __future__ import annotations

from kubetrade.api.routes.settings import trading_mode


def test_trading_mode_is_the_strategies_modes() -> None:
    paper, live = {"spec": {"mode": "paper"}}, {"spec": {"mode": "live"}}
    assert trading_mode([]) == "none"
    assert trading_mode([paper, {"spec": {}}]) == "paper"  # spec.mode defaults to paper
    assert trading_mode([live]) == "live"
    assert trading_mode([paper, live]) == "mixed"
