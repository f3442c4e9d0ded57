"""`kubetrade local` (= `make run`) as a user runs it: a subprocess that answers /health,
paper-trades on replayed real candles, and shows the trades in Redis, the API and its log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from kubetrade.resources import Strategy, load_manifests

REPO = Path(__file__).resolve().parents[2]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
#: Strategies `kubetrade local` runs from examples/strategies (one runner each).
EXAMPLE_STRATEGIES = sum(
    1 for r in load_manifests(REPO / "examples" / "strategies") if isinstance(r, Strategy)
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError, redis.RedisError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class Local:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, prefix: str):
        self.proc, self.port, self.log, self.prefix = proc, port, log, prefix

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"log line is not JSON: {line[:200]}")
        return out


@pytest.fixture
def start_local(tmp_path: Path) -> Iterator[Callable[..., Local]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(redis_url: str | None, metrics_port: int | None = None) -> Local:
        port = _free_port()
        prefix = f"e2e-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "KUBETRADE_MARKET_DATA", "TELEGRAM_BOT_TOKEN")}
        env.update(KUBETRADE_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1",
                   KUBETRADE_REPLAY_INTERVAL="0.02")
        if redis_url:
            env["REDIS_URL"] = redis_url
        if metrics_port:
            env["METRICS_PORT"] = str(metrics_port)
        log = tmp_path / f"local-{port}.log"
        proc = subprocess.Popen(
            [KUBETRADE, "local", "--port", str(port), "--market-data", "replay:bundled",
             "--strategies", str(REPO / "examples" / "strategies"),
             "--data-dir", str(tmp_path / f"data-{port}")],
            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return Local(proc, port, log, prefix)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_local_with_redis_trades_and_serves_health(
    start_local: Callable[..., Local], redis_url: str
) -> None:
    metrics_port = _free_port()
    local = start_local(redis_url, metrics_port)
    health = wait_for(
        lambda: httpx.get(local.url + "/health", timeout=2).json(), 30, "/health"
    )
    assert health["status"] == "ok"  # type: ignore[index]
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    trades_key = f"{local.prefix}:trades"
    wait_for(lambda: r.xlen(trades_key) >= 1, 120, "a closed paper trade in Redis")
    _id, trade = r.xrange(trades_key, count=1)[0]
    assert trade["strategy"] in {"btc-sma", "btc-rsi", "btc-bollinger"}
    assert trade["symbol"] == "BTC/USDT"
    wait_for(
        lambda: {"trade.closed", "fill"} <= {str(x.get("event")) for x in local.lines()},
        30,
        "the fill and the closed trade in the JSON log",
    )
    assert any(
        line.get("event") == "local.market_data" and "replay" in str(line.get("source"))
        for line in local.lines()
    )
    # the summary is written after the trade is committed (its own write): wait for it
    summary_key = f"{local.prefix}:strategy:{trade['strategy']}:summary"
    summary = wait_for(lambda: (s if int((s := r.hgetall(summary_key)).get("trades", 0)) >= 1
                                else None), 30, "the trade counted in the summary")
    assert summary["phase"] in {"Running", "Halted", "Disabled"}  # type: ignore[index]
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'kubetrade_fills_total{side="buy",strategy="' in metrics
    assert "kubetrade_decision_latency_seconds_bucket" in metrics
    assert 'kubetrade_equity{strategy="btc-sma"}' in metrics
    # graceful stop on SIGTERM
    local.proc.send_signal(signal.SIGTERM)
    assert local.proc.wait(30) == 0


def test_local_needs_nothing_installed(start_local: Callable[..., Local]) -> None:
    """No REDIS_URL: the embedded Redis holds state; the API shows the paper trades."""
    local = start_local(None)
    wait_for(lambda: httpx.get(local.url + "/health", timeout=2).status_code == 200, 30,
             "/health")
    assert any(line.get("event") == "local.redis_embedded" for line in local.lines())
    trades = wait_for(
        lambda: httpx.get(local.url + "/api/trades", timeout=2).json()["items"],
        120,
        "a paper trade served by /api/trades",
    )
    assert trades[0]["symbol"] == "BTC/USDT"  # type: ignore[index]
    # the kill switch through the dashboard API reaches every runner
    answer = httpx.post(local.url + "/api/emergency/close-all", json={"reason": "e2e"},
                        timeout=5)
    assert answer.status_code == 200, answer.text
    wait_for(
        lambda: len([a for a in httpx.get(local.url + "/api/emergency", timeout=2)
                     .json()["acks"].values() if a["action"] == "close-all"])
        == EXAMPLE_STRATEGIES,
        30,
        "close-all acks of every runner",
    )
    wait_for(lambda: httpx.get(local.url + "/api/positions", timeout=2).json() in ([], {}),
             30, "no open positions after close-all")
