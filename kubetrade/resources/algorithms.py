"""Which algorithms a Strategy may name, and the parameters each takes.

The trading engine owns the algorithms (``kubetrade.domain.algorithms.ALGORITHMS``);
this module reads them from there so the CRD and the engine cannot disagree. Until
the engine's module is importable the parameter models below stand in, with the same
names and rules, so the resources can be validated and the CRDs generated.

Rules that relate two parameters (slow period above fast period) cannot be read off
a pydantic model; ``CROSS_RULES`` states them once more as CEL for the API server.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubetrade.domain.algorithms import ALGORITHMS
from kubetrade.domain.registry import RULES, NoParams, params_model, registered
from kubetrade.resources.common import Num, _camel


class _Params(BaseModel):
    model_config = ConfigDict(alias_generator=_camel, populate_by_name=True, extra="forbid")


class SmaCrossoverParams(_Params):
    """Buy when the fast SMA crosses above the slow one, sell on the cross below."""

    fast_period: int = Field(default=10, ge=2, le=200, description="Candles in the fast SMA.")
    slow_period: int = Field(default=30, ge=3, le=500, description="Candles in the slow SMA.")

    @model_validator(mode="after")
    def _slow_above_fast(self) -> Self:
        if self.slow_period <= self.fast_period:
            raise ValueError(
                f"slowPeriod ({self.slow_period}) must be greater than fastPeriod "
                f"({self.fast_period})"
            )
        return self


class RsiMeanReversionParams(_Params):
    """Buy when RSI falls below oversold, sell when it rises above overbought."""

    period: int = Field(default=14, ge=2, le=200, description="Candles in the RSI.")
    oversold: Num = Field(
        default=Decimal(30), gt=0, lt=100, description="RSI level below which to buy."
    )
    overbought: Num = Field(
        default=Decimal(70), gt=0, lt=100, description="RSI level above which to sell."
    )

    @model_validator(mode="after")
    def _bands_ordered(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError(
                f"oversold ({self.oversold}) must be below overbought ({self.overbought})"
            )
        return self


class BollingerBreakoutParams(_Params):
    """Buy on a close above the upper Bollinger band, sell on a close below the middle."""

    period: int = Field(default=20, ge=2, le=500, description="Candles in the moving average.")
    std_dev: Num = Field(
        default=Decimal(2), gt=0, le=10, description="Band width in standard deviations."
    )


FALLBACK_ALGORITHMS: dict[str, type[BaseModel]] = {
    "sma-crossover": SmaCrossoverParams,
    "rsi-mean-reversion": RsiMeanReversionParams,
    "bollinger-breakout": BollingerBreakoutParams,
}

#: CEL rules (over ``self.parameters``, with the defaults substituted for absent
#: fields) and their messages, per algorithm.
CROSS_RULES: dict[str, list[tuple[str, str]]] = {
    "sma-crossover": [
        (
            "{slowPeriod} > {fastPeriod}",
            "spec.parameters.slowPeriod must be greater than spec.parameters.fastPeriod "
            "for sma-crossover",
        )
    ],
    "rsi-mean-reversion": [
        (
            "{oversold} < {overbought}",
            "spec.parameters.oversold must be below spec.parameters.overbought "
            "for rsi-mean-reversion",
        )
    ],
}


#: ``rules`` in the CRD: no ``spec.parameters`` (everything is in ``spec.rules``), and
#: ``spec.rules`` goes with ``algorithm: rules`` only.
CROSS_RULES["rules"] = [("has(self.rules)", "spec.rules is required when algorithm is rules")]
for _name in FALLBACK_ALGORITHMS:
    CROSS_RULES.setdefault(_name, []).append(
        ("!has(self.rules)", f"spec.rules is only for algorithm rules, not {_name}")
    )


def algorithms() -> dict[str, type[BaseModel]]:
    """What the CRD knows: the built-in algorithms and ``rules`` (no parameters).

    Plugins are not in the CRD (the operator's image does not carry them); see
    ``installed_algorithms``."""
    return {**ALGORITHMS, RULES: NoParams}


def installed_algorithms() -> dict[str, type[BaseModel]]:
    """Every algorithm this process can run: built-ins, ``rules`` and installed plugins
    (``kubetrade.algorithms`` entry points), name -> parameters model."""
    return {name: params_model(name) for name in registered()}
