"""The replay feed: time order across symbols, resume after a cursor, endless laps."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle
from kubetrade.runner.market import ReplaySource


def _candles(start: int, closes: list[int]) -> list[Candle]:
    return [
        Candle(start + i * 60_000, Decimal(c), Decimal(c), Decimal(c), Decimal(c), Decimal(1))
        for i, c in enumerate(closes)
    ]


async def _take(src: ReplaySource, cursor: dict[str, int], n: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    async for symbol, candle in src.candles(cursor):
        out.append((symbol, candle.ts_ms))
        if len(out) == n:
            break
    return out


async def test_merges_symbols_in_time_order_and_paces_with_clock() -> None:
    clock = ManualClock(0)
    src = ReplaySource(
        {"BTC/USDT": _candles(0, [1, 2, 3]), "ETH/USDT": _candles(30_000, [4, 5, 6])},
        clock, interval=0.5, loop=False,
    )
    got = await _take(src, {}, 100)
    assert got == [
        ("BTC/USDT", 0), ("ETH/USDT", 30_000), ("BTC/USDT", 60_000),
        ("ETH/USDT", 90_000), ("BTC/USDT", 120_000), ("ETH/USDT", 150_000),
    ]
    assert clock.now_ms() == 3000  # six candles, half a second each


async def test_resumes_after_cursor_and_laps_forward_in_time() -> None:
    src = ReplaySource({"BTC/USDT": _candles(0, [1, 2, 3])}, ManualClock(), 0, loop=True)
    assert await _take(src, {"BTC/USDT": 60_000}, 3) == [
        ("BTC/USDT", 120_000), ("BTC/USDT", 180_000), ("BTC/USDT", 240_000)
    ]
    # a cursor inside the third lap resumes there, never repeating a timestamp
    got = await _take(src, {"BTC/USDT": 420_000}, 2)
    assert got == [("BTC/USDT", 480_000), ("BTC/USDT", 540_000)]
