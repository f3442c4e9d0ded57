"""Issue 17 item 2: the kill switch of `kubetrade local` outlives Redis outages. The
test runs its own redis-server (append-only file) and stops/starts it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.local_kit import LocalProc, base_env, local_procs, start
from tests.e2e.test_local import EXAMPLE_STRATEGIES, _free_port, wait_for

__all__ = ["local_procs"]  # the fixture, imported for pytest


class RedisServer:
    """A redis-server the test stops and starts again on the same port and files."""

    def __init__(self, directory: Path) -> None:
        self.port, self.dir = _free_port(), directory
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: redis.Redis.from_url(self.url).ping(), 20, "redis-server up")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(20)

    def signal(self, sig: signal.Signals) -> None:
        """SIGSTOP: hung (connections open, nothing answers); SIGCONT: back."""
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    s.start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.stop()


def _acks(local: LocalProc, action: str) -> int:
    body = local.get("/api/emergency").json()
    return len([a for a in body["acks"].values() if a["action"] == action])


def _events(local: LocalProc, event: str) -> list[dict[str, Any]]:
    out = []
    for line in local.log.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if item.get("event") == event:
            out.append(item)
    return out


def _start(local_procs: list[subprocess.Popen[bytes]], tmp_path: Path, url: str,
           interval: str) -> LocalProc:
    env = base_env(REDIS_URL=url, KUBETRADE_REPLAY_INTERVAL=interval)
    local = start(local_procs, tmp_path / "local.log", env)
    local.wait_healthy()
    wait_for(lambda: len(_events(local, "runner.market_data")) == EXAMPLE_STRATEGIES, 60,
             "every runner trading")
    return local


def test_a_stop_after_an_outage_between_candles_halts_every_runner(
    server: RedisServer, tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    local = _start(local_procs, tmp_path, server.url, "3")
    server.stop()
    server.start()
    wait_for(lambda: len(_events(local, "runner.listener_up")) >= EXAMPLE_STRATEGIES, 30,
             "the runners' listeners back")
    answer = local.post("/api/emergency/stop", json={"reason": "after the outage"})
    assert answer.status_code == 200, answer.text
    _assert_stopped(local, ack_within_s=30)


def test_a_stop_during_an_outage_is_applied_at_once_and_written_later(
    server: RedisServer, tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    local = _start(local_procs, tmp_path, server.url, "0.5")
    server.stop()
    answer = local.post("/api/emergency/stop", json={"reason": "during the outage"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["action"] == "stop"
    assert body["note"].startswith("Redis is unreachable: applied in this process to")
    server.start()
    r = redis.Redis.from_url(server.url, decode_responses=True)
    wait_for(lambda: any(r.hget(k, "action") == "stop" for k in r.keys("*emergency")), 30,
             "the kept stop written to Redis")
    _assert_stopped(local)


def test_a_stop_while_redis_hangs_is_answered_from_the_runners_memory(
    server: RedisServer, tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    """Redis stopped (SIGSTOP: connections open, nothing answers, as on a frozen host):
    the stop is answered within the client's 10 s (before, ~20 s: every Redis wait of
    the request ran to redis-py's 5 s socket timeout), every runner counts as applied
    (its halt holds in memory while its own writes wait), and once Redis answers again
    the kept stop is written and every runner acknowledges it."""
    local = _start(local_procs, tmp_path, server.url, "0.5")
    server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = local.post("/api/emergency/stop", json={"reason": "redis hung"})
        print(f"stop answered in {time.monotonic() - started:.2f} s with Redis hung")
        assert answer.status_code == 200, answer.text
        note = answer.json()["note"]
        assert note.startswith("Redis is unreachable: applied in this process to"), note
        # every runner is named: halted in memory, or busy with a candle and told
        assert _runners_named(note) == EXAMPLE_STRATEGIES, note
        # what was just accepted is what the API says, with Redis still hung
        shown = local.get("/api/emergency")
        assert shown.status_code == 200 and shown.json()["action"] == "stop", shown.text
    finally:
        server.signal(signal.SIGCONT)
    _assert_stopped(local)


def test_a_stop_accepted_while_redis_hangs_outlives_the_process(
    server: RedisServer, tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    """The stop is accepted while Redis hangs, the process is stopped, and the hung
    Redis dies without having written it: the next start writes the kept stop before
    any runner trades (it was lost: the next start traded, new fills within 25 s)."""
    local = _start(local_procs, tmp_path, server.url, "0.5")
    server.signal(signal.SIGSTOP)
    try:
        answer = local.post("/api/emergency/stop", json={"reason": "redis hung, then exit"})
        assert answer.status_code == 200, answer.text
        local.proc.send_signal(signal.SIGTERM)
        local.proc.wait(60)
        kept = [e for e in _events(local, "local.emergency_unwritten_at_exit")]
        assert kept and kept[0]["kept_in"].endswith("emergency-kept.json"), kept
    finally:
        # the hung Redis dies (a resumed one would run the writes still in its socket)
        server.signal(signal.SIGKILL)
        assert server.proc is not None
        server.proc.wait(20)
    server.start()
    env = base_env(REDIS_URL=server.url, KUBETRADE_REPLAY_INTERVAL="0.5")
    again = start(local_procs, tmp_path / "again.log", env)  # the same --data-dir
    again.wait_healthy()
    assert _events(again, "local.emergency_kept_restored")
    assert again.get("/api/emergency").json()["action"] == "stop"
    _assert_stopped(again)
    assert not (tmp_path / "data" / "emergency-kept.json").exists()


def _runners_named(note: str) -> int:
    """How many runners the note names, as taking the change now or when busy."""
    counts = re.findall(r"(\d+) runner\(s\)", note)
    return sum(int(n) for n in counts)


def _assert_stopped(local: LocalProc, ack_within_s: float = 90) -> None:
    """Every runner acknowledges the stop (within ``ack_within_s``), /api/emergency
    says stop, and /api/status says what each runner does: halted, having applied it."""
    wait_for(lambda: _acks(local, "stop") == EXAMPLE_STRATEGIES, ack_within_s,
             "every runner acks")
    assert local.get("/api/emergency").json()["action"] == "stop"
    status = local.get("/api/status").json()
    assert status["status"] == "stopped", status
    assert len(status["strategies"]) == EXAMPLE_STRATEGIES
    for runner in status["strategies"]:
        assert runner["phase"] == "Halted" and runner["emergency_applied"] is True, runner
