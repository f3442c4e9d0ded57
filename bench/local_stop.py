"""Clean stops of ``kubetrade local``: N stop signals (SIGINT and SIGTERM alternately)
at random moments after start-up, each on a fresh process whose three runners trade
fast (a candle every 10 ms); prints the time from the signal to the end of the process
(p50/p95/max), the exit codes, and the fills logged after the stop line (at most one
candle in flight per runner may fill).

Run: ``.venv/bin/python bench/local_stop.py [--tries 50] [--seed 1]``
Needs ``redis-server`` on PATH (a real Redis, as the e2e test uses). Figures are
printed, never asserted; the bound is asserted by tests/e2e/test_local_stop.py.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runner import RedisServer, free_port
from kubetrade.cli._local.stopping import STOP_BOUND_S
from tests.e2e.test_local_stop import FAST, STRATEGY, Local, _fills_after_stop

START_TIMEOUT_S = 120


def _strategies(directory: Path) -> Path:
    directory.mkdir()
    for name, (algorithm, parameters) in FAST.items():
        (directory / f"{name}.yaml").write_text(
            STRATEGY.format(name=name, algorithm=algorithm, parameters=parameters)
        )
    return directory


def _started(local: Local) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and local.proc.poll() is None:
        if any(str(e.get("event", "")).startswith("local.") for e in local.events()):
            return True
        time.sleep(0.05)
    return False


def one_try(n: int, rnd: random.Random, strategies: Path, redis_url: str,
            workdir: Path) -> tuple[float | None, int | None, int, float]:
    """(seconds from signal to exit or None past the bound, exit code, fills after stop,
    delay of the signal after start-up)."""
    sig = signal.SIGINT if n % 2 == 0 else signal.SIGTERM
    local = Local(strategies, redis_url, free_port(), workdir / f"try-{n}.log")
    delay = rnd.uniform(0.0, 6.0)
    try:
        if not _started(local):
            return None, local.proc.poll(), 0, delay
        time.sleep(delay)
        sent = time.monotonic()
        local.proc.send_signal(sig)
        try:
            code = local.proc.wait(STOP_BOUND_S * 3)
        except subprocess.TimeoutExpired:
            return None, None, 0, delay
        took = time.monotonic() - sent
        fills = sum(_fills_after_stop(local.events()).values())
        return took, code, fills, delay
    finally:
        local.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    redis_server = RedisServer()
    took: list[float] = []
    codes: dict[str, int] = {}
    fills_after: list[int] = []
    hung = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            strategies = _strategies(Path(tmp) / "strategies")
            for n in range(args.tries):
                seconds, code, fills, delay = one_try(n, rnd, strategies, redis_server.url,
                                                      Path(tmp))
                codes[str(code)] = codes.get(str(code), 0) + 1
                fills_after.append(fills)
                if seconds is None:
                    hung += 1
                else:
                    took.append(seconds)
                print(f"try {n:2d}: signal {delay:4.2f}s after start-up, exit {code} in "
                      f"{'-' if seconds is None else f'{seconds:.2f}s'}, "
                      f"{fills} fill(s) after the stop line", flush=True)
    finally:
        redis_server.stop()
    took.sort()
    print(f"\n{args.tries} stops ({redis_server.kind}); bound {STOP_BOUND_S:.0f}s")
    if took:
        p95 = took[min(len(took) - 1, int(len(took) * 0.95))]
        print(f"signal -> exit: p50 {statistics.median(took):.2f}s  p95 {p95:.2f}s  "
              f"max {took[-1]:.2f}s; within the bound: "
              f"{sum(1 for t in took if t <= STOP_BOUND_S)}/{args.tries}")
    print(f"exit codes: {codes}; not ended or not started: {hung}")
    print(f"fills after the stop line: total {sum(fills_after)}, max per process "
          f"{max(fills_after, default=0)}")


if __name__ == "__main__":
    main()
