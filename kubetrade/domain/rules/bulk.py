"""The replay's bulk path: every indicator over a whole candle series at once, and the
rule expressions evaluated over the resulting arrays (numpy).

The live path (``ta.py`` + CEL per candle) is the reference; this path only makes a
replay of a million candles fast, and must give the very same signals: a replay that
disagrees with live trading at a tie (two averages equal to the last bit) would
validate a strategy that does not exist. So TA-Lib computes the kinds whose TA-Lib
function reproduces the live computation bit for bit (SMA, EMA, rolling highest/lowest,
ADX: checked by tests/unit/rules/test_indicators.py); for the others TA-Lib's compiled
arithmetic rounds differently (fused multiply-add) and the live implementation is run
over the series instead (``stepwise``). Each value at index i depends only on candles
0..i, so no look-ahead.

TA-Lib treats values below 1e-8 as zero in a few places (a variance, a true range), which
would flatten indicators on low-priced pairs (0.0016 BTC); inputs are scaled by a power
of two before the call and outputs scaled back, which is exact in binary floating point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from kubetrade.domain.rules.parse import Node
from kubetrade.domain.rules.ta import Indicator

Array = np.ndarray[Any, np.dtype[np.float64]]
"""One float64 value per candle, NaN before the indicator's first value."""

FIELD = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


def _scale(x: Array) -> float:
    finite = np.abs(x[np.isfinite(x)])
    typical = float(np.median(finite)) if finite.size else 1.0
    if typical <= 0.0:
        return 1.0
    return float(2.0 ** (20 - round(math.log2(typical))))


def _series(ohlcv: list[Array], p: Any, default: str = "close") -> tuple[Array, float]:
    x = ohlcv[FIELD[getattr(p, "source", None) or default]]
    s = _scale(x)
    return x * s, s


def _hlc(ohlcv: list[Array]) -> tuple[Array, Array, Array, float]:
    s = _scale(ohlcv[3])
    return ohlcv[1] * s, ohlcv[2] * s, ohlcv[3] * s, s


def _talib() -> Any:
    """TA-Lib, imported on first use: it imports pandas (~0.4 s of CPU), which a
    replay of a built-in algorithm (or ``kubetrade --help``) never needs."""
    import talib

    return talib


def _one(fn: str, default: str = "close") -> Callable[..., list[Array]]:
    def run(o: list[Array], p: Any) -> list[Array]:
        x, s = _series(o, p, default)
        out: Array = getattr(_talib(), fn)(x, p.period) / s
        return [out]

    return run


def _adx(o: list[Array], p: Any) -> list[Array]:
    h, low, c, _ = _hlc(o)
    return [_talib().ADX(h, low, c, p.period)]


BULK: dict[str, Callable[[list[Array], Any], list[Array]]] = {
    "sma": _one("SMA"),
    "ema": _one("EMA"),
    "adx": _adx,
    "highest": _one("MAX", "high"),
    "lowest": _one("MIN", "low"),
}
"""TA-Lib per indicator kind: (o, h, l, c, v arrays, params) -> outputs."""


def stepwise(indicator: Indicator, ohlcv: list[Array]) -> list[Array]:
    """Run the live implementation over the series: outputs, NaN until it is ready."""
    n = len(ohlcv[0])
    k = len(indicator.out)
    out = [[math.nan] * n for _ in range(k)]
    update = indicator.update
    for i, row in enumerate(zip(*(a.tolist() for a in ohlcv), strict=True)):
        update(*row)
        if indicator.count > indicator.lookback:
            for j in range(k):
                out[j][i] = indicator.out[j]
    return [np.array(col) for col in out]


def compute(kind: str, params: Any, make: Callable[[Any], Indicator], ohlcv: list[Array]
            ) -> list[Array]:
    """Every output of one indicator over the series (TA-Lib or ``stepwise``)."""
    fn = BULK.get(kind)
    return fn(ohlcv, params) if fn is not None else stepwise(make(params), ohlcv)


def shifted(x: Array, n: int) -> Array:
    """``x`` as it was ``n`` candles earlier (NaN for the first n)."""
    out = np.full_like(x, np.nan)
    if n < len(x):
        out[n:] = x[: len(x) - n]
    return out


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
    "==": np.equal, "!=": np.not_equal, "&&": np.logical_and, "||": np.logical_or,
}


def evaluate(node: Node, values: dict[str, Array]) -> Any:
    """The expression over whole arrays (``values``: variable name -> array)."""
    op = node.op
    if op in ("num", "bool"):
        return node.value
    if op == "var":
        return values[node.name]
    if op == "prev":
        return shifted(values[node.name], int(node.value or 0))
    if op == "neg":
        return np.negative(evaluate(node.args[0], values))
    if op == "not":
        return np.logical_not(evaluate(node.args[0], values))
    if op == "cond":
        return np.where(*(evaluate(a, values) for a in node.args))
    with np.errstate(all="ignore"):
        return _BINARY[op](evaluate(node.args[0], values), evaluate(node.args[1], values))
