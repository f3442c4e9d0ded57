"""risk.stop_limit_for: the on-exchange stop of a position on the exchange's grids."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import MarketInfo
from kubetrade.domain.risk import RiskLimits, stop_limit_for

BTC = MarketInfo("BTC/USDT", "BTC", "USDT", price_step=Decimal("0.01"),
                 qty_step=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                 min_notional=Decimal("5"))


def test_quantity_and_prices_rounded_down_limit_below_the_stop() -> None:
    limits = RiskLimits(stop_limit_offset_pct=Decimal("0.5"))
    got = stop_limit_for(Decimal("0.0157842"), Decimal("60181.5129"), BTC, limits)
    assert got == (Decimal("0.01578"), Decimal("60181.51"), Decimal("59880.60"))


def test_none_without_a_stop_or_below_the_exchange_minimums() -> None:
    limits = RiskLimits()
    assert stop_limit_for(Decimal("1"), None, BTC, limits) is None
    assert stop_limit_for(Decimal("0.000009"), Decimal("60000"), BTC, limits) is None
    # 0.00008 at a limit of 59,700: 4.78 USDT < 5 USDT minimum notional
    assert stop_limit_for(Decimal("0.00008"), Decimal("60000"), BTC, limits) is None


def test_the_option_is_on_by_default_and_spelled_for_the_crd() -> None:
    limits = RiskLimits()
    assert limits.stop_loss_on_exchange is True
    assert RiskLimits.model_validate({"stopLossOnExchange": False}).stop_loss_on_exchange is False
