"""Donchian channel breakout, as a kubetrade algorithm plugin (docs/plugins.md).

BUY when a candle closes above the highest high of the ``period`` candles before it;
SELL when it closes below the lowest low of the ``exitPeriod`` candles before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.models import Candle, Side


class DonchianParams(BaseModel):
    """spec.parameters of donchian-breakout (camelCase in YAML)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    period: int = Field(default=20, ge=2, le=500, description="Entry channel, in candles.")
    exit_period: int = Field(default=10, ge=2, le=500, description="Exit channel, in candles.")


class _State:
    def __init__(self, size: int) -> None:
        self.highs: deque[float] = deque(maxlen=size)
        self.lows: deque[float] = deque(maxlen=size)


class DonchianBreakout(Algorithm[DonchianParams, _State]):
    """Needs highs and lows, so it overrides ``on_candle``/``bind_candle``."""

    algorithm = "donchian-breakout"
    Params = DonchianParams

    @property
    def warmup(self) -> int:
        return max(self.params.period, self.params.exit_period) + 1

    def _new_state(self) -> _State:
        return _State(max(self.params.period, self.params.exit_period))

    def _step(self, state: _State, close: float) -> Side | None:
        raise TypeError("donchian-breakout needs whole candles")

    def _candle(self, state: _State, candle: Candle) -> Side | None:
        high, low, close = float(candle.high), float(candle.low), float(candle.close)
        signal = None
        if len(state.highs) == state.highs.maxlen:
            entry_high = max(list(state.highs)[-self.params.period :])
            exit_low = min(list(state.lows)[-self.params.exit_period :])
            if close < exit_low:
                signal = Side.SELL
            elif close > entry_high:
                signal = Side.BUY
        state.highs.append(high)  # this candle joins the channel only after deciding
        state.lows.append(low)
        return signal

    def on_candle(self, symbol: str, candle: Candle) -> Side | None:
        return self.bind_candle(symbol)(candle)

    def bind_candle(self, symbol: str) -> Callable[[Candle], Side | None]:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state()
        return lambda candle: self._candle(state, candle)

    def _dump(self, state: _State) -> dict[str, Any]:
        return {"highs": list(state.highs), "lows": list(state.lows)}

    def _load(self, data: dict[str, Any]) -> _State:
        state = self._new_state()
        state.highs.extend(float(x) for x in data.get("highs", []))
        state.lows.extend(float(x) for x in data.get("lows", []))
        return state
