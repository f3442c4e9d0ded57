"""The report's equity curve is bounded and keeps the real extremes."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from kubetrade.validation.curve import MAX_POINTS, downsample, write_curve_csv


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


def test_a_long_replay_keeps_the_report_bounded_and_the_full_curve_beside_it(
    tmp_path: Path,
) -> None:
    import csv
    import json

    from kubetrade.cli import main
    from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

    # 30 days of real minutes: the day of BTC/USDT candles, shifted by whole days
    rows = list(csv.reader(shared_data("binance-BTCUSDT-1m-2024-09-21.csv").open()))
    long_file = tmp_path / "long.csv"
    with long_file.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        for day in range(30):
            for r in rows[1:]:
                w.writerow([int(r[0]) + day * 86_400_000, *r[1:]])
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("long", "sma-crossover", "{fastPeriod: 10, slowPeriod: 30}",
                                  "BTC/USDT", "1m"))
    full = tmp_path / "equity.csv"
    main(["validate", "--strategy-file", str(spec), "--replay", str(long_file), "--no-html",
          "--report-dir", str(tmp_path / "r"), "--equity-csv", str(full),
          "--datadir", str(filters_dir(tmp_path))])
    (path,) = (tmp_path / "r").glob("validation_report_*.json")
    report = json.loads(path.read_text())
    lines = full.read_text().splitlines()
    assert report["equity_curve_points"] == 30 * 1440 == len(lines) - 1
    assert len(report["equity_curve"]) <= MAX_POINTS < 30 * 1440
    assert report["equity_curve_file"] == str(full)
    points = {tuple(line.split(",")) for line in lines[1:]}
    assert all((str(p["ts_ms"]), p["equity"]) in points for p in report["equity_curve"])
    equities = [Decimal(line.split(",")[1]) for line in lines[1:]]
    assert min(Decimal(p["equity"]) for p in report["equity_curve"]) == min(equities)


def test_a_curve_in_columns_reads_as_its_pairs() -> None:
    from array import array

    from kubetrade.validation.curve import EquityCurve

    pairs = _curve(50_000)
    columns = EquityCurve(array("q", [t for t, _ in pairs]), [e for _, e in pairs])
    assert columns == pairs and len(columns) == len(pairs)
    assert columns[7] == pairs[7] and columns[-1] == pairs[-1]
    assert columns[10:20] == pairs[10:20] and list(columns) == pairs
    assert columns != pairs[:-1] and columns != [*pairs[:-1], (1, Decimal(1))]
    assert downsample(columns, 2000) == downsample(pairs, 2000)
    columns.append((pairs[-1][0] + 60_000, Decimal(1)))
    assert columns[-1] == (pairs[-1][0] + 60_000, Decimal(1))


def _reference_downsample(curve: list[tuple[int, Decimal]], max_points: int
                          ) -> list[tuple[int, Decimal]]:
    """The plain loop ``downsample`` replaced (per bucket the first lowest and highest
    value by ``min``/``max``), to check the vectorised one picks the very same points."""
    n = len(curve)
    if n <= max_points:
        return list(curve)
    values = [e for _, e in curve]
    buckets = (max_points - 2) // 2
    out = [curve[0]]
    for b in range(buckets):
        lo = 1 + (n - 2) * b // buckets
        hi = 1 + (n - 2) * (b + 1) // buckets
        if lo >= hi:
            continue
        first, second = sorted((min(range(lo, hi), key=values.__getitem__),
                                max(range(lo, hi), key=values.__getitem__)))
        out.append(curve[first])
        if second != first:
            out.append(curve[second])
    out.append(curve[-1])
    return out


def test_downsample_picks_the_points_of_the_plain_loop_ties_included() -> None:
    import random
    from array import array

    from kubetrade.validation.curve import EquityCurve

    rng = random.Random(7)
    base = Decimal("10000.000000000000001")
    for n, points in ((5_000, 100), (5_000, 1_000), (4_999, 7), (20_000, 2_000)):
        # flat runs (cash), equal values, and values equal as floats but not exactly
        values: list[Decimal] = []
        while len(values) < n:
            v = base + Decimal(rng.randint(-50, 50)) / 10
            if rng.random() < 0.3:
                v += Decimal("1e-15") * rng.randint(0, 3)
            values.extend([v] * rng.choice((1, 1, 2, 40)))
        pairs = [(60_000 * i, v) for i, v in enumerate(values[:n])]
        want = _reference_downsample(pairs, points)
        assert downsample(pairs, points) == want
        cols = EquityCurve(array("q", [t for t, _ in pairs]), [v for _, v in pairs])
        assert downsample(cols, points) == want
        floats = [(t, float(v)) for t, v in pairs]
        assert downsample(floats, points) == _reference_downsample(floats, points)  # type: ignore[arg-type]
