"""Built-in strategies, selectable by name, with typed and validated parameters.

The parameter models are pydantic so the operator can generate the Strategy CRD schema
from them (camelCase, descriptions, bounds) and so a bad ``parameters`` block is refused
with a message naming the field. The strategies themselves are plain classes: they are
called once per closed candle in the replay loop, where pydantic would cost more than
the maths.

Contract (public: plugins implement it too, see docs/plugins.md): an algorithm is told
about *closed* candles only, through ``on_candle(symbol, candle)`` (whose default feeds
the close to ``update(symbol, close)``), and answers ``Side.BUY`` (enter long),
``Side.SELL`` (exit) or ``None``. It never sees the candle being formed, so it cannot
look ahead. It keeps state per symbol, so one Strategy can trade several symbols. Stop-
loss, sizing and every risk rule are the engine's, not the algorithm's.

Algorithms are found by name through the ``kubetrade.algorithms`` entry point group
(``kubetrade.domain.registry``); the built-ins below are registered there too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kubetrade.domain.indicators import PRICE_SCALE, RollingStats, WilderRSI
from kubetrade.domain.models import Candle, Side

_CONFIG = ConfigDict(
    alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
)


def _require_above(high_name: str, high: float, low_name: str, low: float) -> None:
    """Refuse parameters where ``high`` is not above ``low``.

    Raises:
        ValueError: ``"<high_name> (<high>) must be greater than <low_name> (<low>)"``.
    """
    if high <= low:
        raise ValueError(f"{high_name} ({high}) must be greater than {low_name} ({low})")


class SmaCrossoverParams(BaseModel):
    """Trend following: long while the fast average is above the slow one."""

    model_config = _CONFIG

    fast_period: int = Field(
        default=10, ge=1, le=1000, description="Candles in the fast simple moving average."
    )
    slow_period: int = Field(
        default=30, ge=2, le=5000, description="Candles in the slow simple moving average."
    )

    @model_validator(mode="after")
    def _slow_after_fast(self) -> Self:
        _require_above("slowPeriod", self.slow_period, "fastPeriod", self.fast_period)
        return self


class RsiMeanReversionParams(BaseModel):
    """Mean reversion: buy when RSI is oversold, sell when it is overbought."""

    model_config = _CONFIG

    period: int = Field(default=14, ge=2, le=1000, description="RSI lookback in candles.")
    oversold: float = Field(
        default=30.0, gt=0, lt=100, description="Buy when RSI falls below this level."
    )
    overbought: float = Field(
        default=70.0, gt=0, lt=100, description="Sell when RSI rises above this level."
    )

    @model_validator(mode="after")
    def _levels_ordered(self) -> Self:
        _require_above("overbought", self.overbought, "oversold", self.oversold)
        return self


class BollingerBreakoutParams(BaseModel):
    """Breakout: buy when the close breaks above the upper band, exit below the middle."""

    model_config = _CONFIG

    period: int = Field(default=20, ge=2, le=1000, description="Bollinger window in candles.")
    std_dev: float = Field(
        default=2.0, gt=0, le=10, description="Band width in population standard deviations."
    )


ALGORITHMS: dict[str, type[BaseModel]] = {
    "sma-crossover": SmaCrossoverParams,
    "rsi-mean-reversion": RsiMeanReversionParams,
    "bollinger-breakout": BollingerBreakoutParams,
}
"""Parameter models keyed by the ``spec.algorithm`` names users type."""

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S")


class Algorithm(ABC, Generic[P, S]):
    """Per-symbol state plus a decision rule; see the module docstring for the contract.

    A subclass sets ``algorithm`` (the name users type in ``spec.algorithm``) and
    ``Params`` (a pydantic model of ``spec.parameters``, camelCase aliases, extra
    fields forbidden), and implements ``warmup``, ``_new_state``, ``_step`` (one close),
    ``_dump`` and ``_load`` (JSON-able state, for restarts). One that needs the whole
    candle (open, high, low, volume) overrides ``on_candle`` and ``bind_candle``.
    """

    algorithm: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: P) -> None:
        self.params = params
        self._states: dict[str, S] = {}

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Closed candles needed for the first possible signal (it can come on the
        ``warmup``-th candle); the runner feeds at least this much history at start."""

    @abstractmethod
    def _new_state(self) -> S: ...

    @abstractmethod
    def _step(self, state: S, close: float) -> Side | None: ...

    @abstractmethod
    def _dump(self, state: S) -> dict[str, Any]: ...

    @abstractmethod
    def _load(self, data: dict[str, Any]) -> S: ...

    def update(self, symbol: str, close: float) -> Side | None:
        """Feed one *closed* candle's close; returns the signal it triggers, if any."""
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state()
        return self._step(state, close)

    def bind(self, symbol: str) -> Callable[[float], Side | None]:
        """``update`` for one symbol as a single callable, for the per-candle loop.

        The bound step holds the symbol's state object; ``restore`` replaces the states,
        so bind again after restoring.
        """
        if type(self).update is not Algorithm.update:
            update = self.update
            return lambda close: update(symbol, close)
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state()
        return partial(self._step, state)

    def on_candle(self, symbol: str, candle: Candle) -> Side | None:
        """Feed one *closed* candle; the default feeds its close to ``update``."""
        return self.update(symbol, float(candle.close))

    def bind_candle(self, symbol: str) -> Callable[[Candle], Side | None]:
        """``on_candle`` for one symbol as a single callable (what the engine calls per
        candle); bind again after ``restore``."""
        if type(self).on_candle is not Algorithm.on_candle:
            on_candle = self.on_candle
            return lambda candle: on_candle(symbol, candle)
        step = self.bind(symbol)
        return lambda candle: step(float(candle.close))

    def prepare(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Announce the candles a replay is about to feed for ``symbol`` (oldest first),
        before the first of them. An algorithm may precompute over them in bulk; what
        it then answers per candle must be exactly what it would have answered live
        (no look-ahead). The default does nothing."""
        del symbol, candles

    def parameters(self) -> dict[str, Any]:
        return self.params.model_dump(by_alias=True)

    def snapshot(self) -> dict[str, Any]:
        """Indicator state per symbol, JSON-able, so a restart needs no re-warm-up."""
        return {
            "algorithm": self.algorithm,
            "symbols": {sym: self._dump(st) for sym, st in self._states.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("algorithm") not in (None, self.algorithm):
            raise ValueError(
                f"snapshot is for algorithm {data.get('algorithm')!r}, not {self.algorithm!r}"
            )
        self._states = {sym: self._load(st) for sym, st in data.get("symbols", {}).items()}


class _SmaState:
    __slots__ = ("above", "fast_sum", "full", "slow_sum", "window")

    def __init__(self) -> None:
        self.window: deque[int] = deque()
        self.fast_sum = 0
        self.slow_sum = 0
        self.full = False
        self.above: bool | None = None


class SmaCrossover(Algorithm[SmaCrossoverParams, _SmaState]):
    """BUY when fast SMA crosses above slow SMA, SELL when it crosses below.

    "Crosses above" means: on the previous closed candle fast <= slow, on this one
    fast > slow (and symmetrically for below). The first candle on which both averages
    exist only records which side fast is on; it never signals. Sums are exact
    integers of 1e-8 price units, so equality is real equality.
    """

    algorithm = "sma-crossover"
    Params = SmaCrossoverParams

    def __init__(self, params: SmaCrossoverParams) -> None:
        super().__init__(params)
        self._fast = params.fast_period
        self._slow = params.slow_period
        # once the window holds slow+1 values, the value leaving the fast window is here
        self._fast_out = params.slow_period - params.fast_period

    @property
    def warmup(self) -> int:
        return self._slow + 1

    def _new_state(self) -> _SmaState:
        return _SmaState()

    def _step(self, state: _SmaState, close: float) -> Side | None:
        x = round(close * PRICE_SCALE)
        window = state.window
        window.append(x)
        if state.full:
            # steady state: the window holds slow+1 values until the popleft
            fast_sum = state.fast_sum = state.fast_sum + x - window[self._fast_out]
            slow_sum = state.slow_sum = state.slow_sum + x - window.popleft()
        else:
            n = len(window)
            fast_sum = state.fast_sum = state.fast_sum + x - (
                window[n - 1 - self._fast] if n > self._fast else 0
            )
            slow_sum = state.slow_sum = state.slow_sum + x
            if n < self._slow:
                return None
            state.full = True
        above = fast_sum * self._slow > slow_sum * self._fast
        prev = state.above
        if prev is above:
            return None
        state.above = above
        if prev is None:
            return None
        return Side.BUY if above else Side.SELL

    def _dump(self, state: _SmaState) -> dict[str, Any]:
        return {"window": list(state.window), "above": state.above}

    def _load(self, data: dict[str, Any]) -> _SmaState:
        st = _SmaState()
        st.window = deque(int(v) for v in data.get("window", []))
        while len(st.window) > self._slow:
            st.window.popleft()
        vals = list(st.window)
        st.slow_sum = sum(vals)
        st.fast_sum = sum(vals[-self._fast :])
        st.full = len(vals) >= self._slow
        above = data.get("above")
        st.above = None if above is None else bool(above)
        return st


class RsiMeanReversion(Algorithm[RsiMeanReversionParams, WilderRSI]):
    """BUY when RSI crosses down through ``oversold``; SELL when it crosses up through
    ``overbought``. Crossings (not levels) so one excursion gives one signal."""

    algorithm = "rsi-mean-reversion"
    Params = RsiMeanReversionParams

    @property
    def warmup(self) -> int:
        return self.params.period + 2

    def _new_state(self) -> WilderRSI:
        return WilderRSI(self.params.period)

    def _step(self, state: WilderRSI, close: float) -> Side | None:
        before = state.value if state.ready else None
        state.update(close)
        if before is None or not state.ready:
            return None
        now = state.value
        if now < self.params.oversold <= before:
            return Side.BUY
        if now > self.params.overbought >= before:
            return Side.SELL
        return None

    def _dump(self, state: WilderRSI) -> dict[str, Any]:
        return state.snapshot()

    def _load(self, data: dict[str, Any]) -> WilderRSI:
        rsi = WilderRSI(self.params.period)
        rsi.restore(data)
        return rsi


class _BollState:
    __slots__ = ("inside", "stats")

    def __init__(self, period: int) -> None:
        self.stats = RollingStats(period)
        self.inside = True


class BollingerBreakout(Algorithm[BollingerBreakoutParams, _BollState]):
    """BUY when the close ends above the upper band (mean + k*std of the previous
    ``period`` closes plus this one); SELL when it ends below the middle band (the mean).
    A BUY needs the previous close to have been at or below its upper band."""

    algorithm = "bollinger-breakout"
    Params = BollingerBreakoutParams

    @property
    def warmup(self) -> int:
        return self.params.period

    def _new_state(self) -> _BollState:
        return _BollState(self.params.period)

    def _step(self, state: _BollState, close: float) -> Side | None:
        stats = state.stats
        stats.update(close)
        if not stats.ready:
            return None
        mean = stats.mean
        upper = mean + self.params.std_dev * stats.std
        was_inside = state.inside
        state.inside = close <= upper
        if close > upper and was_inside:
            return Side.BUY
        if close < mean:
            return Side.SELL
        return None

    def _dump(self, state: _BollState) -> dict[str, Any]:
        return {"stats": state.stats.snapshot(), "inside": state.inside}

    def _load(self, data: dict[str, Any]) -> _BollState:
        st = _BollState(self.params.period)
        st.stats.restore(data.get("stats", {}))
        st.inside = bool(data.get("inside", True))
        return st


BUILTINS: dict[str, type[Algorithm[Any, Any]]] = {
    "sma-crossover": SmaCrossover,
    "rsi-mean-reversion": RsiMeanReversion,
    "bollinger-breakout": BollingerBreakout,
}
"""The built-in algorithms (also registered as ``kubetrade.algorithms`` entry points)."""


def validate_parameters(algorithm: str, parameters: dict[str, Any] | None) -> BaseModel:
    """The typed parameters, or ValueError naming the algorithm, field and rule.

    Any registered algorithm (built-in or plugin); ``rules`` takes no parameters."""
    # a cycle: the registry imports this module's built-ins
    from kubetrade.domain.registry import params_model

    model = params_model(algorithm)
    try:
        return model.model_validate(parameters or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"parameters.{'.'.join(str(p) for p in err['loc']) or '(model)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid parameters for {algorithm}: {problems}") from None


def create_algorithm(
    algorithm: str, parameters: dict[str, Any] | None = None, *, rules: Any = None
) -> Algorithm[Any, Any]:
    """A fresh algorithm for ``algorithm`` (e.g. 'sma-crossover', 'rules' or an installed
    plugin's name) with validated parameters; ``rules`` is ``spec.rules`` (a mapping or
    the model) and is required for 'rules' only.

    Raises ValueError naming the unknown algorithm or the offending field and rule.
    """
    from kubetrade.domain.registry import create  # a cycle, as in validate_parameters

    return create(algorithm, parameters, rules)


__all__ = [
    "ALGORITHMS",
    "BUILTINS",
    "Algorithm",
    "BollingerBreakout",
    "BollingerBreakoutParams",
    "RsiMeanReversion",
    "RsiMeanReversionParams",
    "SmaCrossover",
    "SmaCrossoverParams",
    "create_algorithm",
    "validate_parameters",
]
