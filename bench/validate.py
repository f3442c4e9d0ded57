"""Whole-command figures: `kubetrade validate --replay` against a whole backtesting.py process.

What runs: the same SMA 10/30 crossover on the same one-minute candles (the real Binance
BTC/USDT candles of 2024-09-21 tiled by whole days, as bench/marketdata.py builds them),
each side as a *whole process* started here, as a user would run it:

* ours: ``kubetrade validate --replay FILE.csv --strategy-file S.yaml --report-dir D``
  (load, replay through the live engine and paper broker, metrics, GO/NO-GO, report);
* theirs: ``python bench/validate.py --backtesting FILE.csv`` which imports pandas and
  backtesting.py, reads the CSV with pandas and runs ``Backtest.run()`` with the rules
  of bench/replay.py (long only, 10% of equity, 5% stop, 0.1% commission, at the close)
  and prints its stats.

The two alternate (ours, theirs, ours, ...) ``--repeat`` times so load from other
processes hits both alike; the figures are the best wall time and the best CPU time
(user+sys of the child, robust when the 2 cores are shared) of each, their ratio, and
then ``kubetrade validate`` on 1,000,000 candles: wall, CPU and peak RSS (the child's
``ru_maxrss``). Targets: ratio >= 3x; 1M candles under 3 s wall and 250 MB RSS.
Last, sweep throughput: ``kubetrade validate --sweep`` of a 4 x 4 SMA grid over the
300,000 candles on all local cores (combinations per second of wall time, and the
out-of-sample run included).
Run: ``.venv/bin/python -m bench.validate``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.marketdata import make_files

STRATEGY = """\
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: bench-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
  exchange: {name: binance}
  riskPolicyRef: bench
  initialCapital: 10000
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: bench}
spec: {maxPositionSizePct: 10, stopLossPct: 5, dailyLossLimitPct: 0, maxDrawdownPct: 0,
       strategyMaxConsecutiveLosses: 0}
"""


def backtesting_process(path: Path) -> int:
    """The backtesting.py side, in this (child) process: read, run, print the stats."""
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    raw = pd.read_csv(path)
    df = pd.DataFrame({"Open": raw["open"], "High": raw["high"], "Low": raw["low"],
                       "Close": raw["close"], "Volume": raw["volume"]})
    df.index = pd.to_datetime(raw["timestamp_ms"], unit="ms")

    def sma(values: object, n: int) -> object:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy(size=0.1, sl=self.data.Close[-1] * 0.95)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    bt = Backtest(df, SmaCross, cash=1_000_000_000, commission=0.001, trade_on_close=True,
                  finalize_trades=True)
    print(bt.run())
    return 0


def timed(argv: list[str], cwd: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s of the child, peak RSS MiB of the child, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=300_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backtesting", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.backtesting:
        return backtesting_process(args.backtesting)
    root = Path(__file__).resolve().parents[1]
    kubetrade = [sys.executable, "-m", "kubetrade", "validate"]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "small").mkdir()
        (d / "big").mkdir()
        small, _ = make_files(d / "small", args.candles)
        big, _ = make_files(d / "big", args.big)
        spec = d / "strategy.yaml"
        spec.write_text(STRATEGY)
        ours = [*kubetrade, "--strategy-file", str(spec), "--report-dir", str(d / "reports"),
                "--replay"]
        theirs = [sys.executable, "-m", "bench.validate", "--backtesting", str(small)]
        best: dict[str, list[float]] = {"ours": [9e9, 9e9], "theirs": [9e9, 9e9]}
        for _ in range(args.repeat):
            for side, cmd in (("ours", [*ours, str(small)]), ("theirs", theirs)):
                wall, cpu, _, code = timed(cmd, root)
                if code not in (0, 3):
                    raise SystemExit(f"{side} exited {code}: {' '.join(cmd)}")
                best[side] = [min(best[side][0], wall), min(best[side][1], cpu)]
        (ow, oc), (tw, tc) = best["ours"], best["theirs"]
        print(f"{args.candles:,} candles, whole process, best of {args.repeat}: "
              f"kubetrade validate --replay wall {ow:.2f} s CPU {oc:.2f} s; "
              f"backtesting.py wall {tw:.2f} s CPU {tc:.2f} s")
        print(f"ratio backtesting.py / kubetrade: {tw / ow:.2f}x by wall time, "
              f"{tc / oc:.2f}x by CPU time (target >= 3x)")
        big_best = [9e9, 9e9, 0.0]
        for _ in range(args.repeat):
            wall, cpu, rss, code = timed([*ours, str(big)], root)
            big_best = [min(big_best[0], wall), min(big_best[1], cpu), max(big_best[2], rss)]
        print(f"{args.big:,} candles: kubetrade validate --replay wall {big_best[0]:.2f} s, "
              f"CPU {big_best[1]:.2f} s, peak RSS {big_best[2]:.0f} MiB "
              f"(targets: < 3 s wall, < 250 MB)")
        sweep = [*ours[:-1], "--no-html", "--sweep", "fastPeriod=5,10,15,20", "--sweep",
                 "slowPeriod=30,40,50,60", "--replay", str(small)]
        wall, cpu, _, code = timed(sweep, root)
        if code not in (0, 3):
            raise SystemExit(f"sweep exited {code}")
        print(f"sweep of 16 combinations over {args.candles:,} candles on {os.cpu_count()} "
              f"cores: wall {wall:.1f} s, CPU {cpu:.1f} s, {16 / wall:.2f} combinations/s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
