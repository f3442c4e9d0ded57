"""Clean stops of `kubetrade local` (issue 17, item 3), as a user's Ctrl-C or a service
manager's SIGTERM hits it: at any moment, the runners stop taking new candles at once
(so no new order) and the process exits within ``STOP_BOUND_S``; a port already taken
fails the start before any runner exists, so nothing trades.

The runners trade fast on purpose (short periods, a candle every 10 ms) so that a stop
that lets them run on shows as fills after the stop line of the log.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from kubetrade.cli._local.stopping import STOP_BOUND_S
from kubetrade.state.keys import Keys

REPO = Path(__file__).resolve().parents[2]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
#: A hang guard for a start that must fail at once (interpreter start-up included).
START_FAILURE_TIMEOUT_S = 60
#: Random-moment stops per run (the issue's 50; KUBETRADE_STOP_TRIES for another).
TRIES = int(os.environ.get("KUBETRADE_STOP_TRIES", "50"))

STRATEGY = """\
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: {algorithm}
  parameters: {parameters}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
  exchange: {{name: binance, testnet: false}}
  riskPolicyRef: default
  enabled: true
  initialCapital: 10000
"""
FAST = {
    "fast-sma": ("sma-crossover", "{fastPeriod: 2, slowPeriod: 3}"),
    "fast-sma-b": ("sma-crossover", "{fastPeriod: 2, slowPeriod: 4}"),
    "fast-rsi": ("rsi-mean-reversion", "{period: 2, oversold: 45, overbought: 55}"),
}


@pytest.fixture
def strategies(tmp_path: Path) -> Path:
    directory = tmp_path / "strategies"
    directory.mkdir()
    for name, (algorithm, parameters) in FAST.items():
        (directory / f"{name}.yaml").write_text(
            STRATEGY.format(name=name, algorithm=algorithm, parameters=parameters)
        )
    return directory


def local_command(strategies: Path, redis_url: str, port: int,
                  prefix: str) -> tuple[list[str], dict[str, str]]:
    """The arguments (after ``kubetrade``) and environment of one fast-trading
    `kubetrade local` on ``redis_url`` under ``prefix``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBETRADE_MARKET_DATA", "TELEGRAM_BOT_TOKEN", "METRICS_PORT")}
    env.update(KUBETRADE_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1", REDIS_URL=redis_url)
    argv = ["local", "--port", str(port), "--market-data", "replay:bundled",
            "--replay-interval", "0.01", "--strategies", str(strategies)]
    return argv, env


class Local:
    """One `kubetrade local` process, its JSON log and its Redis prefix."""

    def __init__(self, strategies: Path, redis_url: str, port: int, log: Path) -> None:
        self.prefix = f"stop-{uuid.uuid4().hex[:8]}"
        self.log = log
        argv, env = local_command(strategies, redis_url, port, self.prefix)
        self.proc = subprocess.Popen(
            [KUBETRADE, *argv], cwd=REPO, env=env, stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def read_events(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process' log (other lines skipped)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a traceback of an interrupt during interpreter start-up
        if isinstance(event, dict):
            out.append(event)
    return out


@pytest.fixture
def local_procs() -> Iterator[list[Local]]:
    procs: list[Local] = []
    yield procs
    for p in procs:
        p.stop()


def _orders_in_redis(r: Any, prefix: str) -> dict[str, int]:
    """Order records per key, trade records and fills-seen records under ``prefix``."""
    found: dict[str, int] = {}
    for key in r.scan_iter(f"{prefix}:*"):
        kind = r.type(key)
        if key.endswith(":orders") or key.endswith(":fills_seen") or key.endswith(":trades"):
            size = {"hash": r.hlen, "set": r.scard, "stream": r.xlen, "list": r.llen,
                    "zset": r.zcard}.get(kind)
            if size is not None and size(key):
                found[key] = int(size(key))
    return found


def test_a_taken_port_stops_everything_before_any_order(
    strategies: Path, redis_url: str, tmp_path: Path, local_procs: list[Local]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        local = Local(strategies, redis_url, port, tmp_path / "taken.log")
        local_procs.append(local)
        code = local.proc.wait(START_FAILURE_TIMEOUT_S)
    events = local.events()
    assert code != 0, "a start whose API cannot listen must fail"
    assert "address already in use" in local.log.read_text().lower()
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    assert _orders_in_redis(r, local.prefix) == {}
    assert [e for e in events if e.get("event") == "fill"] == []


#: What marks the stop in the log: kubetrade's own line, else uvicorn's.
STOP_LINES = ("local.stopping", "Shutting down")
#: How long start-up may take to reach kubetrade's first line on a loaded machine.
START_TIMEOUT_S = 120


def _fills_after_stop(events: list[dict[str, Any]]) -> dict[str, int]:
    """Fills logged after the stop line, per strategy."""
    after: dict[str, int] = {}
    stopping = False
    for e in events:
        if e.get("event") in STOP_LINES:
            stopping = True
        elif stopping and e.get("event") == "fill":
            name = str(e.get("strategy"))
            after[name] = after.get(name, 0) + 1
    return after


def _wait_started(local: Local, what: str) -> None:
    """Until kubetrade logs its first line (its own code runs, handlers included)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not any(str(e.get("event", "")).startswith("local.") for e in local.events()):
        if local.proc.poll() is not None:
            pytest.fail(f"{what}: exited during start-up: {local.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: no start-up line in {START_TIMEOUT_S}s")
        time.sleep(0.05)


class Forker:
    """The fork server of tests/e2e/local_forker.py: `kubetrade local` children without
    an interpreter start each (one try costs about a second, not five)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.local_forker"], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = self._read()
        assert ready.get("ready") == 1, f"the fork server runs threads: {ready}"

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (exit {self.proc.wait(10)})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(60)


class ForkedLocal:
    """One `kubetrade local` forked by :class:`Forker`: like :class:`Local`, by pid."""

    def __init__(self, forker: Forker, strategies: Path, redis_url: str, port: int,
                 log: Path) -> None:
        self.forker = forker
        self.prefix = f"stop-{uuid.uuid4().hex[:8]}"
        self.log = log
        argv, env = local_command(strategies, redis_url, port, self.prefix)
        self.pid = int(forker.call(op="spawn", argv=argv, env=env, log=str(log))["pid"])
        self.code: int | None = None

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None while it runs after ``timeout`` s."""
        if self.code is None:
            self.code = self.forker.call(op="wait", pid=self.pid, timeout=timeout)["code"]
        return self.code

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.log)

    def stop(self) -> None:
        if self.code is None:
            self.code = self.forker.call(op="kill", pid=self.pid)["code"]


@pytest.fixture(scope="module")
def forker() -> Iterator[Forker]:
    server = Forker()
    yield server
    server.close()


#: Where in a process' life the signal falls (the try number picks one in turn):
#: start-up (connecting, seeding, restoring the runners, binding), trading (after the
#: first fill), shutdown (a second signal while the first one's stop is under way).
PHASES = ("start-up", "trading", "shutdown")
#: Seconds after the phase's mark within which the (first) signal falls, at random.
SPREAD_S = {"start-up": 0.5, "trading": 0.5, "shutdown": 0.5}
#: Seconds after the first signal within which the second falls (shutdown phase).
SECOND_SIGNAL_S = 0.5
#: The strategies' timeframe (1m): an order is stamped with its candle's close time.
TIMEFRAME_MS = 60_000
#: The default seed (KUBETRADE_STOP_SEED for another): the same moments every run.
SEED = 17


def _wait_event(local: ForkedLocal, what: str, events: tuple[str, ...]) -> None:
    """Until the log has one of ``events`` (exact names, or a prefix ending in '.')."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        for e in local.events():
            name = str(e.get("event", ""))
            if name in events or any(p.endswith(".") and name.startswith(p) for p in events):
                return
        if local.wait(0.01) is not None:
            pytest.fail(f"{what}: exited before the signal: {local.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: no {events} in {START_TIMEOUT_S}s")


def _orders(r: Any, prefix: str, strategy: str) -> dict[str, dict[str, Any]]:
    """Every order record of ``strategy`` under ``prefix``: client id -> order."""
    raw = r.hgetall(Keys(prefix).orders(strategy))
    return {cid: json.loads(v) for cid, v in raw.items()}


def _check_no_order_after_the_gate(
    r: Any, local: ForkedLocal, events: list[dict[str, Any]], context: str
) -> None:
    """Orders only from candles each runner took before its gate closed at the stop;
    fills logged after the stop line only from the one candle then in flight."""
    gates = {str(e["strategy"]): e.get("last_candles") or {}
             for e in events if e.get("event") == "local.gate_closed"}
    after = _fill_ids_after_stop(events)
    for name in FAST:
        orders = _orders(r, local.prefix, name)
        last = gates.get(name)
        if last is None:
            assert orders == {}, f"{context}: {name} has orders but no gate-closed line"
            continue
        for cid, order in orders.items():
            symbol = order["symbol"]
            newest = int(last[symbol]) + TIMEFRAME_MS if symbol in last else -1
            assert int(order["created_ms"]) <= newest, (
                f"{context}: {name} order {cid} at {order['created_ms']}, after the close of "
                f"the last candle taken before the stop (opens {last})"
            )
        for cid in after.get(name, []):
            order = orders[cid]
            assert int(order["created_ms"]) == int(last[order["symbol"]]) + TIMEFRAME_MS, (
                f"{context}: {name} filled {cid} (at {order['created_ms']}) after the stop "
                f"line; only the candle in flight (opens {last}) may"
            )


def _fill_ids_after_stop(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Client order ids of the fills logged after the stop line, per strategy."""
    after: dict[str, list[str]] = {}
    stopping = False
    for e in events:
        if e.get("event") in STOP_LINES:
            stopping = True
        elif stopping and e.get("event") == "fill":
            after.setdefault(str(e.get("strategy")), []).append(str(e.get("client_order_id")))
    return after


def test_stop_signals_at_random_moments_end_trading_at_once_and_exit_in_bound(
    strategies: Path, redis_url: str, tmp_path: Path, forker: Forker
) -> None:
    seed = int(os.environ.get("KUBETRADE_STOP_SEED", str(SEED)))
    rnd = random.Random(seed)
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    for n in range(TRIES):
        phase = PHASES[n % len(PHASES)]
        sig, other = rnd.sample([signal.SIGINT, signal.SIGTERM], 2)
        delay = rnd.uniform(0.0, SPREAD_S[phase])
        second = rnd.uniform(0.0, SECOND_SIGNAL_S)
        context = f"try {n} (seed {seed}, {phase}, {sig.name} {delay:.2f}s in)"
        local = ForkedLocal(forker, strategies, redis_url, _free_port(),
                            tmp_path / f"try-{n}.log")
        try:
            # kubetrade's first line: its signal handlers are in place from then on
            _wait_event(local, context, ("local.",) if phase == "start-up" else ("fill",))
            if local.wait(delay) is not None:
                pytest.fail(f"{context}: exited before the signal: "
                            f"{local.log.read_text()[-2000:]}")
            os.kill(local.pid, sig)
            signalled = time.monotonic()
            if phase == "shutdown" and local.wait(second) is None:
                os.kill(local.pid, other)
                context += f", then {other.name} {second:.2f}s later"
            code = local.wait(max(0.0, STOP_BOUND_S - (time.monotonic() - signalled)))
            assert code is not None, f"{context}: still running {STOP_BOUND_S}s after the signal"
            assert code == 0, f"{context}: exit {code}: {local.log.read_text()[-2000:]}"
            events = local.events()
            assert any(e.get("event") in STOP_LINES for e in events), f"{context}: no stop line"
            _check_no_order_after_the_gate(r, local, events, context)
        finally:
            local.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_states_the_bound_the_stops_are_held_to() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"the process exits within {STOP_BOUND_S:.0f} s" in readme
