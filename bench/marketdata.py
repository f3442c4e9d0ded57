"""Market data figures: loading 1,000,000 one-minute candles (CSV and Parquet) through the
one validating loader, iterating them as Decimal candles, and download throughput from
the fake Binance into the store.

The candles are the real Binance BTC/USDT 1-minute candles of 2024-09-21 (tests/data/
market), tiled with timestamps shifted by whole days until there are 1,000,000, written
to a temporary directory (CSV with the documented header, and Parquet). Each load runs
in a fresh child process, so its peak RSS (ru_maxrss) is its own; the time is the wall
time of ``load_candles(path, LoadOptions(timeframe="1m"))`` (every rule applied), best
of --repeat, with the process CPU time beside it (all threads; the robust figure when
other processes share the cores, as the wall time then includes waiting for a core);
the RSS figure is the child's peak minus its RSS after imports. Target: under 1 s.
Run: ``.venv/bin/python -m bench.marketdata``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SOURCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "market" / \
    "binance-BTCUSDT-1m-2024-09-21.csv"
DAY_MS = 86_400_000


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_files(directory: Path, rows: int) -> tuple[Path, Path]:
    """``rows`` candles tiled from the real day, as CSV and Parquet in ``directory``."""
    day = pacsv.read_csv(SOURCE)
    copies = -(-rows // day.num_rows)
    ts = day.column("timestamp_ms").to_pylist()
    parts = []
    for k in range(copies):
        shifted = pa.array([t + k * DAY_MS for t in ts], pa.int64())
        parts.append(day.set_column(0, "timestamp_ms", shifted))
    table = pa.concat_tables(parts).slice(0, rows)
    csv_path, pq_path = directory / "candles-1m.csv", directory / "candles-1m.parquet"
    with pa.OSFile(str(csv_path), "wb") as sink:
        sink.write(b"timestamp_ms,open,high,low,close,volume\n")
        pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(
            include_header=False, quoting_style="none"))
    pq.write_table(table, pq_path, compression="zstd")
    return csv_path, pq_path


def measure(path: Path, repeat: int, iterate: bool) -> dict[str, Any]:
    """In this (child) process: best load time, peak RSS growth, optional iteration."""
    from kubetrade.marketdata import LoadOptions, load_candles

    base = _rss_mib()
    best = best_cpu = float("inf")
    frame = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        frame = load_candles(path, LoadOptions(timeframe="1m"))
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    assert frame is not None
    out: dict[str, Any] = {"file": path.name, "candles": len(frame), "load_s": round(best, 3),
                           "load_cpu_s": round(best_cpu, 3),
                           "peak_rss_mib": round(resource.getrusage(
                               resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 1)}
    if iterate:
        t0, c0 = time.perf_counter(), time.process_time()
        n = sum(1 for _ in frame)
        out["iterate_candles_s"] = round(time.perf_counter() - t0, 3)
        out["iterate_candles_cpu_s"] = round(time.process_time() - c0, 3)
        assert n == len(frame)
    return out


async def download_rate() -> dict[str, Any]:
    """Candles/s of `download` from the fake Binance (real ccxt client) into a store."""
    from kubetrade.domain.clock import SystemClock
    from kubetrade.exchange.binance import BinanceExchange
    from kubetrade.exchange.resilient import ResilientExchange
    from kubetrade.marketdata.download import download
    from kubetrade.marketdata.store import CandleStore, SeriesKey
    from kubetrade.marketdata.timeframes import parse_time
    from tests.fakes.binance import FakeBinance

    fake = FakeBinance(weight_limit=10**9).start()
    clock = SystemClock()
    ex = ResilientExchange(BinanceExchange(base_url=fake.url, clock=clock), clock)
    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            result = await download(ex, CandleStore(d), SeriesKey("binance", "BTC/USDT", "1m"),
                                    parse_time("2024-09-21"), parse_time("2024-09-21T23:59"),
                                    clock)
            wall = time.perf_counter() - t0
    finally:
        await ex.close()
        fake.stop()
    return {"download_candles": result.fetched, "pages": result.pages, "wall_s": round(wall, 3),
            "candles_per_s": round(result.fetched / wall)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--iterate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, args.iterate)))
        return 0
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        csv_path, pq_path = make_files(Path(d), args.rows)
        for path, iterate in ((csv_path, False), (pq_path, True)):
            child = subprocess.run(
                [sys.executable, "-m", "bench.marketdata", "--measure", str(path),
                 "--repeat", str(args.repeat), *(["--iterate"] if iterate else [])],
                capture_output=True, text=True, check=True)
            r = json.loads(child.stdout)
            verdict = (f"wall {'OK' if r['load_s'] < 1.0 else 'OVER'}, CPU "
                       f"{'OK' if r['load_cpu_s'] < 1.0 else 'OVER'} the 1 s target")
            extra = (f"; iterating them as Decimal Candles: wall {r['iterate_candles_s']} s, "
                     f"CPU {r['iterate_candles_cpu_s']} s" if "iterate_candles_s" in r else "")
            print(f"load {r['candles']:,} candles {r['file']}: wall {r['load_s']} s, CPU "
                  f"{r['load_cpu_s']} s (best of {args.repeat}), peak RSS "
                  f"+{r['peak_rss_mib']} MiB{extra} [{verdict}]")
    d_rate = asyncio.run(download_rate())
    print(f"download from fake Binance: {d_rate['download_candles']} candles in "
          f"{d_rate['pages']} pages, {d_rate['wall_s']} s, {d_rate['candles_per_s']} candles/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
