"""The indicator catalogue: what ``spec.rules.indicators`` may name.

Each kind has a pydantic parameter model (camelCase, bounds), its outputs, the
incremental implementation for the live path (``ta.py``/``ta_range.py``) and the bulk
one for the replay (``bulk.py``). An indicator declared as ``name: {kind: {params}}``
is read in expressions as ``name`` (one output) or ``name.<output>`` (several).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from kubetrade.domain.rules.ta import ATR, EMA, MACD, RSI, SMA, Bollinger, Indicator
from kubetrade.domain.rules.ta_range import ADX, VWAP, Highest, Lowest, Stochastic

MAX_PERIOD = 1000
"""No single period may exceed what the runner can fetch as warm-up in one request."""

CandleField = Literal["open", "high", "low", "close", "volume"]


class _P(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _period(default: int, low: int = 1) -> Any:
    return Field(default=default, ge=low, le=MAX_PERIOD, description="Candles in the window.")


class PeriodParams(_P):
    """One window length over the close (or another candle field)."""

    period: int = _period(14)
    source: CandleField = Field(default="close", description="Candle field averaged.")


class RsiParams(_P):
    """Wilder's RSI window."""

    period: int = _period(14, 2)
    source: CandleField = Field(default="close", description="Candle field.")


class MacdParams(_P):
    """Fast and slow EMA lengths and the signal EMA length."""

    fast: int = _period(12)
    slow: int = _period(26, 2)
    signal: int = _period(9)
    source: CandleField = Field(default="close", description="Candle field.")

    @model_validator(mode="after")
    def _slow_after_fast(self) -> Self:
        if self.slow <= self.fast:
            raise ValueError(f"slow ({self.slow}) must be greater than fast ({self.fast})")
        return self


class BollingerParams(_P):
    """Window and band width in standard deviations."""

    period: int = _period(20, 2)
    std_dev: float = Field(default=2.0, gt=0, le=10, description="Band width (std devs).")
    source: CandleField = Field(default="close", description="Candle field.")


class WindowParams(_P):
    """One window length (the indicator reads high, low and close)."""

    period: int = _period(14)


class ExtremeParams(_P):
    """Window length and the field searched."""

    period: int = _period(20)
    source: CandleField | None = Field(
        default=None, description="Candle field (default high for highest, low for lowest)."
    )


class StochasticParams(_P):
    """%K window, %K smoothing (1 = fast stochastic) and %D window."""

    k_period: int = _period(14)
    k_smooth: int = _period(3)
    d_period: int = _period(3)


@dataclass(frozen=True)
class Kind:
    """One indicator kind of the catalogue."""

    name: str
    params: type[_P]
    outputs: tuple[str, ...]
    """Output names; empty for a single-valued indicator."""
    make: Callable[[Any], Indicator]
    summary: str

    def build(self, params: dict[str, Any] | None) -> tuple[BaseModel, Indicator]:
        """Validated params and a fresh incremental indicator (ValidationError if bad)."""
        model = self.params.model_validate(params or {})
        return model, self.make(model)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("sma", PeriodParams, (), lambda p: SMA(p.period, p.source), "simple moving average"),
        Kind("ema", PeriodParams, (), lambda p: EMA(p.period, p.source),
             "exponential moving average"),
        Kind("rsi", RsiParams, (), lambda p: RSI(p.period, p.source), "Wilder's RSI, 0..100"),
        Kind("macd", MacdParams, ("line", "signal", "hist"),
             lambda p: MACD(p.fast, p.slow, p.signal, p.source), "MACD"),
        Kind("bollinger", BollingerParams, ("upper", "middle", "lower"),
             lambda p: Bollinger(p.period, p.std_dev, p.source), "Bollinger bands"),
        Kind("atr", WindowParams, (), lambda p: ATR(p.period), "average true range"),
        Kind("stochastic", StochasticParams, ("k", "d"),
             lambda p: Stochastic(p.k_period, p.k_smooth, p.d_period), "stochastic %K/%D"),
        Kind("adx", WindowParams, (), lambda p: ADX(p.period), "average directional index"),
        Kind("vwap", WindowParams, (), lambda p: VWAP(p.period), "rolling VWAP"),
        Kind("highest", ExtremeParams, (), lambda p: Highest(p.period, p.source or "high"),
             "rolling highest"),
        Kind("lowest", ExtremeParams, (), lambda p: Lowest(p.period, p.source or "low"),
             "rolling lowest"),
    )
}
"""Every indicator kind, by the name used in ``spec.rules.indicators``."""

CANDLE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Variables every expression may read: the closed candle's fields."""
