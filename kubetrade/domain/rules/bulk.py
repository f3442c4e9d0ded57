"""The replay's bulk path: every indicator over a whole candle series at once (TA-Lib),
and the rule expressions evaluated over the resulting arrays (numpy).

The live path (``ta.py`` + CEL per candle) is the reference; this path only makes a
replay of a million candles fast, and ``tests/unit/rules/test_parity.py`` checks that
both give the same signals on real candles. Each value at index i depends only on
candles 0..i (TA-Lib's functions are causal), so no look-ahead.

TA-Lib treats values below 1e-8 as zero in a few places (a variance, a true range), which
would flatten indicators on low-priced pairs (0.0016 BTC); inputs are scaled by a power
of two before the call and outputs scaled back, which is exact in binary floating point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import talib
from talib._ta_lib import MA_Type

from kubetrade.domain.rules.parse import Node

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


def _macd(o: list[Array], p: Any) -> list[Array]:
    x, s = _series(o, p)
    return [a / s for a in talib.MACD(x, p.fast, p.slow, p.signal)]


def _bbands(o: list[Array], p: Any) -> list[Array]:
    x, s = _series(o, p)
    return [a / s for a in talib.BBANDS(x, p.period, p.std_dev, p.std_dev, MA_Type.SMA)]


def _vwap(o: list[Array], p: Any) -> list[Array]:
    h, low, c, v = o[1], o[2], o[3], o[4]
    tp = (h + low + c) / 3.0
    n = p.period
    out = np.full(len(c), np.nan)
    if len(c) < n:
        return [out]
    windows = np.lib.stride_tricks.sliding_window_view
    pv = windows(tp * v, n).sum(axis=1)
    vol = windows(v, n).sum(axis=1)
    traded = windows(v != 0.0, n).any(axis=1)
    with np.errstate(all="ignore"):
        out[n - 1 :] = np.where(traded, pv / vol, tp[n - 1 :])
    return [out]


def _one(fn: Callable[..., Array], default: str = "close") -> Callable[..., list[Array]]:
    def run(o: list[Array], p: Any) -> list[Array]:
        x, s = _series(o, p, default)
        return [fn(x, p.period) / s]

    return run


def _stoch(o: list[Array], p: Any) -> list[Array]:
    h, low, c, _ = _hlc(o)
    return list(talib.STOCH(h, low, c, p.k_period, p.k_smooth, MA_Type.SMA, p.d_period,
                            MA_Type.SMA))


def _atr(o: list[Array], p: Any) -> list[Array]:
    h, low, c, s = _hlc(o)
    return [talib.ATR(h, low, c, p.period) / s]


def _adx(o: list[Array], p: Any) -> list[Array]:
    h, low, c, _ = _hlc(o)
    return [talib.ADX(h, low, c, p.period)]


def _rsi(o: list[Array], p: Any) -> list[Array]:
    x, _ = _series(o, p)
    return [talib.RSI(x, p.period)]


BULK: dict[str, Callable[[list[Array], Any], list[Array]]] = {
    "sma": _one(talib.SMA),
    "ema": _one(talib.EMA),
    "rsi": _rsi,
    "macd": _macd,
    "bollinger": _bbands,
    "atr": _atr,
    "stochastic": _stoch,
    "adx": _adx,
    "vwap": _vwap,
    "highest": _one(talib.MAX, "high"),
    "lowest": _one(talib.MIN, "low"),
}
"""Bulk computation per indicator kind: (o, h, l, c, v arrays, params) -> outputs."""


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
