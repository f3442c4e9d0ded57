"""The RiskPolicy kind: the limits the risk engine enforces for the Strategies naming it.

The fields are the engine's ``RiskLimits`` (kubetrade.domain.risk), inherited: one field
list with one set of defaults, bounds and descriptions. This kind adds the CR spelling
(camelCase), the exact BASE/QUOTE pattern for symbols, and Decimals as JSON numbers in
manifests. Percentages are percent (``stopLossPct: 5`` is 5 %), 0 switches a
percentage limit off. Runners watch their RiskPolicy and apply changes live, without a restart.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_serializer, field_validator

from kubetrade.domain.risk import RiskLimits
from kubetrade.resources.common import CRModel, CRStatus, Resource, as_number
from kubetrade.resources.strategy import SYMBOL_PATTERN, check_pairs


def _symbols_pattern(schema: dict[str, Any], model: type[Any]) -> None:
    """JSON Schema: each allowed symbol spelt BASE/QUOTE (the API server checks it)."""
    schema["properties"]["allowedSymbols"]["items"]["pattern"] = SYMBOL_PATTERN


#: The Decimal fields of RiskLimits: numbers (not strings) in manifests.
_DECIMALS = tuple(n for n, f in RiskLimits.model_fields.items() if f.annotation is Decimal)


class RiskPolicySpec(RiskLimits, CRModel):
    """Pre-trade checks, sizing and halts. Defaults let paper trading run with no edits."""

    model_config = ConfigDict(frozen=False, json_schema_extra=_symbols_pattern)

    @field_validator("allowed_symbols")
    @classmethod
    def _symbols_look_like_pairs(cls, value: list[str]) -> list[str]:
        # replaces RiskLimits' check (same name): the CR spells pairs out exactly
        check_pairs("allowedSymbols", value)
        return value

    @field_serializer(*_DECIMALS, when_used="json")
    def _decimal_as_number(self, value: Decimal) -> int | float:
        return as_number(value)

    def to_limits(self) -> RiskLimits:
        """The engine's RiskLimits for this policy."""
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
