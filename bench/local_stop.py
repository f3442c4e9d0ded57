"""Clean stops of ``kubetrade local``: N stop signals (SIGINT/SIGTERM drawn at random) at
random moments of a process' life, each on a fresh process whose three runners trade
fast (a candle every 10 ms), as tests/e2e/test_local_stop.py does: start-up (signal
within 0.5 s of kubetrade's first line), trading (within 0.5 s of the first fill),
shutdown (a second signal within 0.5 s of the first). Prints the time from the (first)
signal to the end of the process per phase (p50/p95/max), the exit codes, the fills
logged after the stop line, and the seconds one try costs.

By default the processes are forked from a server that imported kubetrade once
(tests/e2e/local_forker.py, as the test does); ``--spawn`` starts each as a user does
(``kubetrade local``, interpreter start-up included, which only moves the start).

Run: ``.venv/bin/python bench/local_stop.py [--tries 50] [--seed 17] [--spawn]``
Needs ``redis-server`` on PATH (a real Redis, as the e2e test uses). Figures are
printed, never asserted; the bound is asserted by tests/e2e/test_local_stop.py.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runner import RedisServer, free_port
from kubetrade.cli._local.stopping import STOP_BOUND_S
from tests.e2e.test_local_stop import (
    FAST,
    PHASES,
    SECOND_SIGNAL_S,
    SPREAD_S,
    STRATEGY,
    ForkedLocal,
    Forker,
    Local,
    _fills_after_stop,
)

START_TIMEOUT_S = 120


class Spawned:
    """A :class:`Local` (a real ``kubetrade local`` process) with ForkedLocal's calls."""

    def __init__(self, strategies: Path, redis_url: str, port: int, log: Path) -> None:
        self.local = Local(strategies, redis_url, port, log)
        self.pid = self.local.proc.pid

    def wait(self, timeout: float) -> int | None:
        try:
            return self.local.proc.wait(timeout)
        except Exception:
            return None

    def events(self) -> list[dict[str, Any]]:
        return self.local.events()

    def stop(self) -> None:
        self.local.stop()


def _strategies(directory: Path) -> Path:
    directory.mkdir()
    for name, (algorithm, parameters) in FAST.items():
        (directory / f"{name}.yaml").write_text(
            STRATEGY.format(name=name, algorithm=algorithm, parameters=parameters)
        )
    return directory


def _reached(local: Any, marks: tuple[str, ...]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(str(e.get("event", "")).startswith(marks) for e in local.events()):
            return True
        if local.wait(0.01) is not None:
            return False
    return False


def one_try(n: int, rnd: random.Random, start: Any) -> tuple[str, float | None, Any, int]:
    """(phase, seconds from the first signal to the exit or None when it did not end
    within the bound, exit code, fills logged after the stop line)."""
    phase = PHASES[n % len(PHASES)]
    sig, other = rnd.sample([signal.SIGINT, signal.SIGTERM], 2)
    delay = rnd.uniform(0.0, SPREAD_S[phase])
    second = rnd.uniform(0.0, SECOND_SIGNAL_S)
    local = start(n)
    try:
        if not _reached(local, ("local.",) if phase == "start-up" else ("fill",)):
            return phase, None, local.wait(0), 0
        if local.wait(delay) is not None:
            return phase, None, "exited before the signal", 0
        os.kill(local.pid, sig)
        sent = time.monotonic()
        if phase == "shutdown" and local.wait(second) is None:
            os.kill(local.pid, other)
        code = local.wait(STOP_BOUND_S * 2)
        took = time.monotonic() - sent if code is not None else None
        return phase, took, code, sum(_fills_after_stop(local.events()).values())
    finally:
        local.stop()


def _report(tries: int, took: dict[str, list[float]], codes: dict[str, int],
            fills: list[int], wall: float) -> None:
    print(f"\n{tries} stops in {wall:.0f} s ({wall / max(tries, 1):.2f} s per try); "
          f"bound {STOP_BOUND_S:.0f} s")
    for phase, seconds in took.items():
        if not seconds:
            continue
        seconds.sort()
        p95 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))]
        print(f"  {phase:9} signal -> exit: p50 {statistics.median(seconds):.2f} s  "
              f"p95 {p95:.2f} s  max {seconds[-1]:.2f} s  ({len(seconds)} tries, "
              f"{sum(1 for t in seconds if t <= STOP_BOUND_S)} within the bound)")
    print(f"exit codes: {codes}")
    print(f"fills logged after the stop line: total {sum(fills)}, max per process "
          f"{max(fills, default=0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--spawn", action="store_true",
                        help="start each process as a user does (slower start)")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    redis_server = RedisServer()
    forker = None if args.spawn else Forker()
    took: dict[str, list[float]] = {p: [] for p in PHASES}
    codes: dict[str, int] = {}
    fills: list[int] = []
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            strategies = _strategies(Path(tmp) / "strategies")

            def start(n: int) -> Any:
                log = Path(tmp) / f"try-{n}.log"
                if forker is None:
                    return Spawned(strategies, redis_server.url, free_port(), log)
                return ForkedLocal(forker, strategies, redis_server.url, free_port(), log)

            for n in range(args.tries):
                phase, seconds, code, after = one_try(n, rnd, start)
                codes[str(code)] = codes.get(str(code), 0) + 1
                fills.append(after)
                if seconds is not None:
                    took[phase].append(seconds)
                print(f"try {n:2d} {phase:9}: exit {code} in "
                      f"{'-' if seconds is None else f'{seconds:.2f}s'}, "
                      f"{after} fill(s) after the stop line", flush=True)
    finally:
        if forker is not None:
            forker.close()
        redis_server.stop()
    _report(args.tries, took, codes, fills, time.monotonic() - t0)


if __name__ == "__main__":
    main()
