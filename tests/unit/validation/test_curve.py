"""The report's equity curve is bounded and keeps the real extremes."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from kubetrade.validation.curve import downsample, write_curve_csv


def _curve(n: int) -> list[tuple[int, Decimal]]:
    return [(60_000 * i, Decimal(10_000) + Decimal(str(round(100 * math.sin(i / 997), 2))))
            for i in range(n)]


def test_a_short_curve_is_kept_whole() -> None:
    curve = _curve(1000)
    assert downsample(curve, 1000) == curve


def test_a_long_curve_is_bounded_and_keeps_first_last_and_extremes() -> None:
    curve = _curve(300_000)
    small = downsample(curve, 2000)
    assert len(small) <= 2000
    assert small[0] == curve[0] and small[-1] == curve[-1]
    assert [t for t, _ in small] == sorted({t for t, _ in small})  # time order, no repeats
    assert set(small) <= set(curve)  # real points only
    assert min(e for _, e in small) == min(e for _, e in curve)
    assert max(e for _, e in small) == max(e for _, e in curve)


def test_full_curve_as_csv(tmp_path: Path) -> None:
    curve = _curve(10)
    path = write_curve_csv(curve, tmp_path / "equity.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "ts_ms,equity" and len(lines) == 11
    assert lines[3] == f"{curve[2][0]},{curve[2][1]}"
