"""The RiskPolicy kind: the limits the risk engine enforces for the Strategies naming it.

The fields are the engine's ``RiskLimits`` (kubetrade.domain.risk) in CR spelling;
percentages are percent (``stopLossPct: 5`` is 5 %), 0 switches a percentage limit
off. Runners watch their RiskPolicy and apply changes live, without a restart.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator

from kubetrade.resources.common import CRModel, CRStatus, Num, Resource
from kubetrade.resources.strategy import SYMBOL_PATTERN


class RiskPolicySpec(CRModel):
    """Pre-trade checks, sizing and halts. Defaults let paper trading run with no edits."""

    stop_loss_pct: Num = Field(
        default=Decimal("5.0"),
        ge=0,
        lt=100,
        description="Sell a position when it is this many percent below its entry price; "
        "0 = no stop-loss (refused for live strategies).",
    )
    daily_loss_limit_pct: Num = Field(
        default=Decimal("3.0"),
        ge=0,
        le=100,
        description="Halt trading for the rest of the UTC day after losing this percent of "
        "the day's starting equity; 0 = no limit (refused for live strategies).",
    )
    max_drawdown_pct: Num = Field(
        default=Decimal("15.0"),
        ge=0,
        le=100,
        description="Halt until a human resumes when equity falls this percent below its "
        "peak; 0 = no limit.",
    )
    max_position_size_pct: Num = Field(
        default=Decimal("10.0"),
        gt=0,
        le=100,
        description="Largest position, as percent of equity, one entry may open.",
    )
    max_concurrent_positions: int = Field(
        default=3, ge=1, le=1000, description="Most positions open at once across symbols."
    )
    max_order_quantity: Num = Field(
        default=Decimal(1_000_000), gt=0, description="Largest base-asset quantity of one order."
    )
    max_order_notional: Num = Field(
        default=Decimal(100_000), gt=0, description="Largest quote-asset value of one order."
    )
    price_collar_pct: Num = Field(
        default=Decimal("5.0"),
        ge=0,
        le=100,
        description="Refuse orders priced more than this percent away from the reference "
        "(last) price; 0 = no collar.",
    )
    reference_max_age_seconds: int = Field(
        default=300,
        ge=1,
        description="Refuse orders when the reference price is older than this.",
    )
    max_orders_per_interval: int = Field(
        default=10,
        ge=1,
        description="Most orders one strategy may send per orderIntervalSeconds.",
    )
    order_interval_seconds: int = Field(
        default=60, ge=1, description="Window of maxOrdersPerInterval."
    )
    allowed_symbols: list[str] = Field(
        default_factory=list,
        description="Pairs strategies may trade (BASE/QUOTE); empty = any.",
        json_schema_extra={"items": {"type": "string", "pattern": SYMBOL_PATTERN}},
    )
    strategy_max_consecutive_losses: int = Field(
        default=5,
        ge=0,
        description="Disable a strategy after this many losing trades in a row; 0 = never.",
    )
    strategy_re_enable_check_hours: Num = Field(
        default=Decimal(24),
        gt=0,
        description="Hours after which an auto-disabled strategy is re-evaluated.",
    )

    @field_validator("allowed_symbols")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for i, symbol in enumerate(value):
            if not re.fullmatch(SYMBOL_PATTERN, symbol):
                raise ValueError(f"allowedSymbols[{i}] {symbol!r} is not BASE/QUOTE, e.g. BTC/USDT")
        return value

    def to_limits(self) -> Any:
        """The engine's RiskLimits for this policy."""
        from kubetrade.domain.risk import RiskLimits

        return RiskLimits.model_validate(self.model_dump(by_alias=True, exclude_none=True))

    @property
    def live_ready(self) -> list[str]:
        """Problems that make this policy unfit for live trading (empty = fit)."""
        problems = []
        if self.stop_loss_pct <= 0:
            problems.append("spec.stopLossPct must be > 0 for live trading")
        if self.daily_loss_limit_pct <= 0:
            problems.append("spec.dailyLossLimitPct must be > 0 for live trading")
        return problems


class RiskPolicyStatus(CRStatus):
    """Which Strategies use the policy."""

    used_by: list[str] = Field(
        default_factory=list, description="Strategies in this namespace that reference it."
    )


class RiskPolicy(Resource):
    """Risk limits shared by the Strategies that reference it by name."""

    kind: Literal["RiskPolicy"] = Field(default="RiskPolicy", description="RiskPolicy")
    spec: RiskPolicySpec = Field(default_factory=RiskPolicySpec)
    status: RiskPolicyStatus | None = None
