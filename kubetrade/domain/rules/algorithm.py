"""``algorithm: rules``: entry/exit conditions over indicators, as an ``Algorithm``.

Live path, per closed candle and symbol: every indicator is updated in O(1)
(``ta.py``), the values an expression reads (and their ``prev`` history) go into one
dict, and the compiled CEL programs decide: exit true -> SELL, else entry true -> BUY.
Nothing is evaluated before the warm-up (every indicator has a value and every
``prev`` reaches a valued candle), so no signal can rest on a missing value.

Replay path: ``prepare(symbol, candles)`` computes every indicator over the whole
series in bulk (``bulk.py``) and the expressions over the arrays (numpy); the per-candle
step then only reads the precomputed signal. Should a candle arrive that was not
announced, the live state is rebuilt from the candles already seen and the live path
takes over, so the two paths can never mix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.models import Candle, Side
from kubetrade.domain.rules import bulk
from kubetrade.domain.rules.catalogue import CANDLE_FIELDS
from kubetrade.domain.rules.cel import prev_name
from kubetrade.domain.rules.spec import RuleSet, RulesSpec, compile_rules
from kubetrade.domain.rules.ta import Indicator

_SIGNAL = {1: Side.BUY, -1: Side.SELL}


class _State:
    """Per-symbol indicators, history and candle count."""

    __slots__ = ("count", "hist", "indicators")

    def __init__(self, rules: RuleSet) -> None:
        self.indicators: list[Indicator] = [d.kind.make(d.params) for d in rules.declared]
        self.hist: dict[str, deque[float]] = {
            v: deque(maxlen=d) for v, d in rules.history.items() if d > 0
        }
        self.count = 0


class _Prepared:
    """Signals computed in bulk for announced candles."""

    __slots__ = ("candles", "i", "live", "signals", "ts")

    def __init__(self, candles: Sequence[Candle], signals: list[int]) -> None:
        self.candles = candles
        self.ts = [c.ts_ms for c in candles]
        self.signals = signals
        self.i = 0
        self.live: Callable[[Candle], Side | None] | None = None
        """Set once a candle arrived that was not announced: the live step from then on."""


class RulesAlgorithm(Algorithm[RulesSpec, _State]):
    """Signals from ``spec.rules`` (see the module docstring)."""

    algorithm = "rules"
    Params: ClassVar[type[RulesSpec]] = RulesSpec

    def __init__(self, params: RulesSpec) -> None:
        super().__init__(params)
        self.rules = compile_rules(params)
        self._prepared: dict[str, _Prepared] = {}
        # (variable, indicator index, output index) for every variable read
        slots: dict[str, tuple[int, int]] = {}
        for i, d in enumerate(self.rules.declared):
            for j, v in enumerate(d.variables()):
                slots[v] = (i, j)
        self._prev_names = {
            v: [prev_name(v, k) for k in range(1, d + 1)] for v, d in self.rules.history.items()
        }
        self._reads = [
            (v, *(slots[v] if v in slots else (-1, CANDLE_FIELDS.index(v))))
            for v in self.rules.history
        ]

    @property
    def warmup(self) -> int:
        return self.rules.warmup

    def _new_state(self) -> _State:
        return _State(self.rules)

    def _step(self, state: _State, close: float) -> Side | None:
        raise TypeError("algorithm rules needs whole candles: call on_candle, not update")

    # ------------------------------------------------------------------ live path
    def _candle_step(self, state: _State, o: float, h: float, lo: float, c: float,
                     v: float) -> Side | None:
        for ind in state.indicators:
            ind.update(o, h, lo, c, v)
        state.count += 1
        fields = (o, h, lo, c, v)
        values: dict[str, float] = {}
        inds = state.indicators
        for name, i, j in self._reads:
            values[name] = fields[j] if i < 0 else inds[i].out[j]
        signal: Side | None = None
        if state.count >= self.rules.warmup:
            for name, hist in state.hist.items():
                for key, past in zip(self._prev_names[name], reversed(hist), strict=False):
                    values[key] = past
            if self.rules.exit.evaluate(values):
                signal = Side.SELL
            elif self.rules.entry.evaluate(values):
                signal = Side.BUY
        for name, hist in state.hist.items():
            hist.append(values[name])
        return signal

    def on_candle(self, symbol: str, candle: Candle) -> Side | None:
        """Feed one closed candle of ``symbol``; the signal it triggers, if any."""
        return self.bind_candle(symbol)(candle)

    def bind_candle(self, symbol: str) -> Callable[[Candle], Side | None]:
        prepared = self._prepared.get(symbol)
        if prepared is not None:
            return lambda candle: self._replayed(symbol, prepared, candle)
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state()
        step = self._candle_step
        return lambda c: step(state, float(c.open), float(c.high), float(c.low),
                              float(c.close), float(c.volume))

    # ------------------------------------------------------------------ replay path
    def prepare(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Compute the signals of ``candles`` (oldest first, the ones about to be fed)
        in bulk; only for a symbol that has seen no candle yet and has not been
        announced already (a second announcement is ignored)."""
        if symbol in self._states or symbol in self._prepared or not candles:
            return
        self._prepared[symbol] = _Prepared(candles, self.bulk_signals(candles))

    def bulk_signals(self, candles: Sequence[Candle]) -> list[int]:
        """1 (BUY), -1 (SELL) or 0 per candle, computed over the whole series."""
        ohlcv = [np.array([float(getattr(c, f)) for c in candles])
                 for f in ("open", "high", "low", "close", "volume")]
        values: dict[str, Any] = dict(zip(("open", "high", "low", "close", "volume"),
                                          ohlcv, strict=True))
        for d in self.rules.declared:
            outs = bulk.compute(d.kind.name, d.params, d.kind.make, ohlcv)
            for name, arr in zip(d.variables(), outs, strict=True):
                values[name] = np.asarray(arr, dtype=np.float64)
        n = len(candles)
        entry = np.broadcast_to(bulk.evaluate(self.rules.entry_ast, values), (n,))
        exit_ = np.broadcast_to(bulk.evaluate(self.rules.exit_ast, values), (n,))
        sig = np.where(exit_, -1, np.where(entry, 1, 0))
        sig[: self.rules.warmup - 1] = 0
        out: list[int] = sig.tolist()
        return out

    def _replayed(self, symbol: str, prepared: _Prepared, candle: Candle) -> Side | None:
        if prepared.live is not None:
            return prepared.live(candle)
        i = prepared.i
        if i < len(prepared.ts) and prepared.ts[i] == candle.ts_ms:
            prepared.i = i + 1
            return _SIGNAL.get(prepared.signals[i])
        # an unannounced candle: rebuild the live state from what was seen, go live for good
        self._prepared.pop(symbol, None)
        state = self._states[symbol] = self._new_state()
        for c in prepared.candles[:i]:
            self._candle_step(state, float(c.open), float(c.high), float(c.low),
                              float(c.close), float(c.volume))
        prepared.live = self.bind_candle(symbol)
        return prepared.live(candle)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """Indicator state per symbol, tagged with the rules it was computed for."""
        data = super().snapshot()
        data["rules"] = self.rules.key
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Load a snapshot; one taken under other rules (the spec changed) is dropped,
        so the indicators warm up again rather than read another rule set's state."""
        if data.get("rules") != self.rules.key:
            super().restore({"algorithm": data.get("algorithm")})
            return
        super().restore(data)

    def _dump(self, state: _State) -> dict[str, Any]:
        return {
            "count": state.count,
            "indicators": [ind.snapshot() for ind in state.indicators],
            "history": {k: list(v) for k, v in state.hist.items()},
        }

    def _load(self, data: dict[str, Any]) -> _State:
        state = _State(self.rules)
        state.count = int(data.get("count", 0))
        for ind, snap in zip(state.indicators, data.get("indicators", []), strict=False):
            ind.restore(snap)
        for name, values in data.get("history", {}).items():
            if name in state.hist:
                state.hist[name].extend(float(x) for x in values)
        return state
