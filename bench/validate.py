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
``--before DIR`` adds an older kubetrade source tree (``git archive <commit> | tar -x
-C DIR``) as a third side, run from DIR (``python -m`` imports from the working
directory first) in the same alternation, so a change is measured before and after
under the same load.
Last, sweep throughput (skipped with ``--no-sweep``): ``kubetrade validate --sweep`` of
a 4 x 4 SMA grid over the 300,000 candles on all local cores (combinations per second
of wall time, and the out-of-sample run included).
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


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None
          ) -> tuple[float, float, float, int]:
    """(wall s, CPU s of the child, peak RSS MiB of the child, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


Side = tuple[str, list[str], Path]
"""(name, command, directory it runs in: ``python -m kubetrade`` imports from there)."""


def best_of(sides: list[Side], repeat: int) -> dict[str, list[float]]:
    """Each side run ``repeat`` times, alternating: best wall, best CPU, worst peak RSS."""
    best = {name: [9e9, 9e9, 0.0] for name, _, _ in sides}
    for _ in range(repeat):
        for name, cmd, cwd in sides:
            wall, cpu, rss, code = timed(cmd, cwd)
            if code not in (0, 3):
                raise SystemExit(f"{name} exited {code}: {' '.join(cmd)}")
            b = best[name]
            best[name] = [min(b[0], wall), min(b[1], cpu), max(b[2], rss)]
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=300_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", type=Path, help="an older kubetrade source tree to compare")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--backtesting", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.backtesting:
        return backtesting_process(args.backtesting)
    root = Path(__file__).resolve().parents[1]
    kubetrade = [sys.executable, "-m", "kubetrade", "validate"]
    before = args.before.resolve() if args.before else None
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
        # backtesting.py's process computes and prints; ours also draws an HTML page with
        # three plots by default: the page-less figure is shown beside it
        sides: list[Side] = [("kubetrade", [*ours, str(small)], root),
                             ("backtesting.py", theirs, root),
                             ("kubetrade --no-html", [*ours[:-1], "--no-html", "--replay",
                                                      str(small)], root)]
        if before is not None:
            sides.append(("kubetrade before", [*ours, str(small)], before))
        best = best_of(sides, args.repeat)
        print(f"{args.candles:,} candles, whole process, best of {args.repeat} (alternating):")
        for name, (wall, cpu, rss) in best.items():
            print(f"  {name:18s} wall {wall:6.2f} s  CPU {cpu:6.2f} s  peak RSS {rss:4.0f} MiB")
        (ow, oc, _), (tw, tc, _) = best["kubetrade"], best["backtesting.py"]
        print(f"ratio backtesting.py / kubetrade: {tw / ow:.2f}x by wall time, "
              f"{tc / oc:.2f}x by CPU time (target >= 3x)")
        nw, nc, _ = best["kubetrade --no-html"]
        print(f"ratio backtesting.py / kubetrade --no-html: {tw / nw:.2f}x by wall time, "
              f"{tc / nc:.2f}x by CPU time")
        big_sides: list[Side] = [("kubetrade", [*ours, str(big)], root)]
        if before is not None:
            big_sides.append(("kubetrade before", [*ours, str(big)], before))
        big_best = best_of(big_sides, args.repeat)
        for name, (wall, cpu, rss) in big_best.items():
            print(f"{args.big:,} candles: {name} validate --replay wall {wall:.2f} s, "
                  f"CPU {cpu:.2f} s, peak RSS {rss:.0f} MiB (targets: < 3 s wall, < 250 MB)")
        if not args.no_sweep:
            sweep_throughput(ours, small, args.candles, root)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


def sweep_throughput(ours: list[str], small: Path, candles: int, root: Path) -> None:
    """``kubetrade validate --sweep`` of a 4 x 4 SMA grid: combinations per second."""
    sweep = [*ours[:-1], "--no-html", "--sweep", "fastPeriod=5,10,15,20", "--sweep",
             "slowPeriod=30,40,50,60", "--replay", str(small)]
    wall, cpu, _, code = timed(sweep, root)
    if code not in (0, 3):
        raise SystemExit(f"sweep exited {code}")
    print(f"sweep of 16 combinations over {candles:,} candles on {os.cpu_count()} "
          f"cores: wall {wall:.1f} s, CPU {cpu:.1f} s, {16 / wall:.2f} combinations/s")


if __name__ == "__main__":
    raise SystemExit(main())
