"""Two-object rules and suspicious values the operator reports (issue 19)."""

from __future__ import annotations

from kubetrade.domain.percentages import fractional_percentages, percent_fields
from kubetrade.operator.checks import symbols_not_allowed


def test_a_fraction_written_for_a_percentage_is_flagged_naming_the_field() -> None:
    (msg,) = fractional_percentages({"stopLossPct": 0.05, "dailyLossLimitPct": 3})
    assert msg.startswith("spec.stopLossPct is 0.05: did you mean 5 % rather than 0.05 %?")


def test_zero_one_and_above_are_not_flagged() -> None:
    assert fractional_percentages({"stopLossPct": 0, "maxDrawdownPct": 1}) == []
    assert fractional_percentages({"dailyLossLimitPct": "2.5", "maxPositionSizePct": None}) == []


def test_a_percentage_normally_below_one_is_not_checked() -> None:
    assert "stopLimitOffsetPct" not in percent_fields()  # defaults to 0.5 %
    assert fractional_percentages({"stopLimitOffsetPct": 0.5}) == []
    assert "stopLossPct" in percent_fields()


def test_allowed_symbols_must_cover_the_strategy() -> None:
    policy = {"allowedSymbols": ["ETH/USDT"]}
    assert symbols_not_allowed(["BTC/USDT", "ETH/USDT"], policy) == ["BTC/USDT"]
    assert symbols_not_allowed(["BTC/USDT"], {}) == []  # no list: no restriction
