"""Each indicator of the catalogue, live (incremental) and bulk (TA-Lib), against an
independent computation on real candles: TA-Lib's C functions called directly for the
incremental implementations, and textbook pandas formulas for both where one exists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from talib._ta_lib import MA_Type

from kubetrade.domain.rules import bulk
from kubetrade.domain.rules.catalogue import KINDS
from tests.unit.rules._candles import FILES, arrays

Arr = np.ndarray[Any, np.dtype[np.float64]]


def live(kind: str, params: dict[str, Any], ohlcv: list[Arr]) -> list[Arr]:
    """Run the incremental indicator over the candles; NaN until it is ready."""
    _, ind = KINDS[kind].build(params)
    rows = []
    for o, h, l, c, v in zip(*ohlcv, strict=True):  # noqa: E741
        ind.update(o, h, l, c, v)
        rows.append(list(ind.out) if ind.ready else [np.nan] * len(ind.out))
    return list(np.array(rows).T)


def in_bulk(kind: str, params: dict[str, Any], ohlcv: list[Arr]) -> list[Arr]:
    model, _ = KINDS[kind].build(params)
    return bulk.compute(kind, model, KINDS[kind].make, ohlcv)


def same(got: Arr, ref: Arr, rtol: float = 1e-9, atol: float = 0.0) -> None:
    """Same NaN positions (same warm-up) and values within tolerance."""
    assert np.array_equal(np.isnan(got), np.isnan(ref)), (
        f"first value at {np.argmax(~np.isnan(got))}, reference at {np.argmax(~np.isnan(ref))}"
    )
    mask = ~np.isnan(ref)
    assert mask.any()
    np.testing.assert_allclose(got[mask], ref[mask], rtol=rtol, atol=atol)


def _scale(x: Arr) -> float:
    """A power of two that brings prices near 1e6, so TA-Lib's absolute 1e-8 epsilons
    cannot flatten a low-priced pair in the reference either."""
    return float(2.0 ** (20 - round(np.log2(np.median(np.abs(x))))))


TALIB: dict[str, tuple[dict[str, Any], Any]] = {
    "sma": ({"period": 20}, lambda o, h, lo, c, v: [talib.SMA(c, 20)]),
    "ema": ({"period": 12}, lambda o, h, lo, c, v: [talib.EMA(c, 12)]),
    "rsi": ({"period": 14}, lambda o, h, lo, c, v: [talib.RSI(c, 14)]),
    "macd": ({"fast": 12, "slow": 26, "signal": 9}, lambda o, h, lo, c, v: list(
        talib.MACD(c, 12, 26, 9))),
    "bollinger": ({"period": 20, "stdDev": 2}, lambda o, h, lo, c, v: list(
        talib.BBANDS(c, 20, 2.0, 2.0))),
    "atr": ({"period": 14}, lambda o, h, lo, c, v: [talib.ATR(h, lo, c, 14)]),
    "stochastic": ({"kPeriod": 14, "kSmooth": 3, "dPeriod": 3}, lambda o, h, lo, c, v: list(
        talib.STOCH(h, lo, c, 14, 3, MA_Type.SMA, 3, MA_Type.SMA))),
    "adx": ({"period": 14}, lambda o, h, lo, c, v: [talib.ADX(h, lo, c, 14)]),
    "highest": ({"period": 20}, lambda o, h, lo, c, v: [talib.MAX(h, 20)]),
    "lowest": ({"period": 20}, lambda o, h, lo, c, v: [talib.MIN(lo, 20)]),
}
_PRICED = {"sma", "ema", "macd", "bollinger", "atr", "highest", "lowest"}


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("kind", sorted(TALIB))
def test_live_matches_talib(kind: str, name: str) -> None:
    params, ref_fn = TALIB[kind]
    ohlcv = arrays(name)
    s = _scale(ohlcv[3])
    refs = ref_fn(*(a * s for a in ohlcv[:4]), ohlcv[4])
    if kind in _PRICED:
        refs = [r / s for r in refs]
    # ratios (%K, RSI, ADX) lose relative precision near 0: compare them absolutely
    atol = 1e-9 if kind in ("stochastic", "rsi", "adx") else 0.0
    for got, ref in zip(live(kind, params, ohlcv), refs, strict=True):
        same(got, ref, rtol=1e-9, atol=atol)


def _ema_textbook(x: pd.Series, n: int) -> pd.Series:
    """EMA seeded with the SMA of the first n values, then k = 2/(n+1)."""
    out = np.full(len(x), np.nan)
    out[n - 1] = x.iloc[:n].mean()
    k = 2.0 / (n + 1)
    for i in range(n, len(x)):
        out[i] = x.iloc[i] * k + out[i - 1] * (1 - k)
    return pd.Series(out)


def _wilder(x: pd.Series, n: int, first: int) -> pd.Series:
    """Wilder's smoothing of x, seeded with the mean of x[first : first + n]."""
    out = np.full(len(x), np.nan)
    start = first + n - 1
    out[start] = x.iloc[first : first + n].mean()
    for i in range(start + 1, len(x)):
        out[i] = (out[i - 1] * (n - 1) + x.iloc[i]) / n
    return pd.Series(out)


def textbook(kind: str, ohlcv: list[Arr]) -> tuple[dict[str, Any], list[pd.Series]]:
    _, h, low, c, v = (pd.Series(a) for a in ohlcv)
    if kind == "sma":
        return {"period": 20}, [c.rolling(20).mean()]
    if kind == "ema":
        return {"period": 12}, [_ema_textbook(c, 12)]
    if kind == "bollinger":
        m, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
        return {"period": 20, "stdDev": 2}, [m + 2 * sd, m, m - 2 * sd]
    if kind == "highest":
        return {"period": 20}, [h.rolling(20).max()]
    if kind == "lowest":
        return {"period": 20}, [low.rolling(20).min()]
    if kind == "vwap":
        tp = (h + low + c) / 3
        return {"period": 20}, [(tp * v).rolling(20).sum() / v.rolling(20).sum()]
    if kind == "rsi":
        d = c.diff()
        gain = _wilder(d.clip(lower=0), 14, 1)
        loss = _wilder((-d).clip(lower=0), 14, 1)
        return {"period": 14}, [100 * gain / (gain + loss)]
    if kind == "atr":
        tr = pd.concat([h - low, (h - c.shift()).abs(), (low - c.shift()).abs()], axis=1).max(
            axis=1)
        return {"period": 14}, [_wilder(tr, 14, 1)]
    if kind == "stochastic":
        ll, hh = low.rolling(14).min(), h.rolling(14).max()
        k = (100 * (c - ll) / (hh - ll)).rolling(3).mean()
        d = k.rolling(3).mean()
        return {"kPeriod": 14, "kSmooth": 3, "dPeriod": 3}, [k.where(d.notna()), d]
    if kind == "macd":
        fast, slow = _ema_textbook(c.iloc[14:].reset_index(drop=True), 12), _ema_textbook(c, 26)
        fast = pd.concat([pd.Series([np.nan] * 14), fast], ignore_index=True)
        line = (fast - slow).where(slow.notna())
        sig = _ema_textbook(line.iloc[25:].reset_index(drop=True), 9)
        sig = pd.concat([pd.Series([np.nan] * 25), sig], ignore_index=True)
        line = line.where(sig.notna())
        return {"fast": 12, "slow": 26, "signal": 9}, [line, sig, line - sig]
    raise AssertionError(kind)


TEXTBOOK = ["atr", "bollinger", "ema", "highest", "lowest", "macd", "rsi", "sma",
            "stochastic", "vwap"]


@pytest.mark.parametrize("kind", TEXTBOOK)
def test_live_and_bulk_match_textbook_formulas(kind: str) -> None:
    """BTC/USDT 1m (no flat windows, so no zero guard is involved)."""
    ohlcv = arrays(FILES[0])
    params, refs = textbook(kind, ohlcv)
    for path in (live, in_bulk):
        for got, ref in zip(path(kind, params, ohlcv), refs, strict=True):
            same(np.asarray(got), ref.to_numpy(), rtol=1e-7, atol=1e-9)


def test_talib_serves_the_bulk_path_where_it_is_exact() -> None:
    assert set(bulk.BULK) == {"sma", "ema", "adx", "highest", "lowest"}


def test_every_kind_is_checked() -> None:
    assert set(KINDS) == set(TALIB) | {"vwap"}
    assert set(KINDS) - {"adx"} <= set(TEXTBOOK)  # ADX: TA-Lib's C code is its reference


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_live_equals_bulk_bit_for_bit(kind: str, name: str) -> None:
    """Where TA-Lib computes the bulk path, it must reproduce the live values exactly:
    otherwise a tie could signal in one path and not the other."""
    params = TALIB.get(kind, ({"period": 20}, None))[0]
    ohlcv = arrays(name)
    for a, b in zip(live(kind, params, ohlcv), in_bulk(kind, params, ohlcv), strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_snapshot_restore_continues_exactly() -> None:
    ohlcv = arrays(FILES[0])
    rows = list(zip(*ohlcv, strict=True))
    for kind in KINDS:
        params = TALIB.get(kind, ({"period": 20}, None))[0]
        _, a = KINDS[kind].build(params)
        _, b = KINDS[kind].build(params)
        for r in rows[:300]:
            a.update(*r)
        import json

        b.restore(json.loads(json.dumps(a.snapshot())))
        for r in rows[300:600]:
            a.update(*r)
            b.update(*r)
            assert a.out == b.out, kind
