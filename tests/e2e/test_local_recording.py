"""Recording in ``kubetrade local`` (issue 13): with ``KUBETRADE_DATADIR`` set and market
data from the exchange (the project's fake Binance serving its recorded candles as
now), the candles the runner consumes appear in the candle store while it runs.

What is true today and tested as such: only exchange candles are recorded
(runner/assembly.py build_market wraps ExchangeSource alone); a replay
(``--market-data replay:...``) records nothing, its candles being files already.
With REDIS_URL set the series' writer lease is in Redis: its key and
``kubetrade_candle_recorder_leader`` name the strategy as the holder, and it is given up
when ``kubetrade local`` stops (docs/marketdata.md). The recorder writes every 15
candles, so the runner is given a cursor 40 minutes back and back-fills (a fresh runner
would start at the newest closed candle and need 15 minutes of live candles before the
first write)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from kubetrade.marketdata.recording import lease_name
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.state.keys import Keys
from tests.e2e.test_local import KUBETRADE, REPO, _free_port, wait_for
from tests.fakes.binance import FakeBinance

NAME = "rec-sma"
STRATEGY = f"""\
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata:
  name: {NAME}
spec:
  algorithm: sma-crossover
  parameters: {{fastPeriod: 5, slowPeriod: 20}}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
  exchange: {{name: binance, testnet: false}}
  enabled: true
  initialCapital: 10000
"""
SERIES = SeriesKey("binance", "BTC/USDT", "1m")


@pytest.fixture
def local_env(tmp_path: Path, redis_url: str) -> Iterator[tuple[dict[str, str], Keys, Path]]:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / f"{NAME}.yaml").write_text(STRATEGY)
    prefix = f"rec-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBETRADE_MARKET_DATA", "TELEGRAM_BOT_TOKEN")}
    env.update(REDIS_URL=redis_url, KUBETRADE_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1",
               KUBETRADE_REPLAY_INTERVAL="0.02", KUBETRADE_DATADIR=str(tmp_path / "candles"))
    yield env, Keys(prefix), tmp_path


def _start(env: dict[str, str], tmp_path: Path, market: str,
           port: int | None = None) -> subprocess.Popen[bytes]:
    port = port or _free_port()
    return subprocess.Popen(
        [KUBETRADE, "local", "--port", str(port), "--market-data", market,
         "--strategies", str(tmp_path / "strategies"), "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, stdout=(tmp_path / f"local-{port}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _sample(port: int, name: str, label: str) -> float:
    """The value of ``name{...label...}`` on the runner's /metrics (-1: not there)."""
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def _metrics_text(port: int) -> str:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return "\n".join(x for x in text.splitlines() if "candle" in x)


def _stored(datadir: Path) -> int:
    store = CandleStore(datadir)
    return len(store.load(SERIES)) if store.path(SERIES).exists() else 0


@pytest.mark.timeout(300)
def test_exchange_candles_appear_in_the_store_while_local_runs(
    local_env: tuple[dict[str, str], Keys, Path], redis_url: str, fake_binance: FakeBinance,
) -> None:
    env, keys, tmp_path = local_env
    fake_binance.run_market_live(warmup_minutes=120)
    env.update(KUBETRADE_EXCHANGE_URL=fake_binance.url)
    now = fake_binance.server_time_ms()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.hset(keys.candle_cursor(NAME), "BTC/USDT", str(now - now % 60_000 - 41 * 60_000))
    metrics_port, port = _free_port(), _free_port()
    env.update(METRICS_PORT=str(metrics_port), DASHBOARD_PASSWORD="")
    proc = _start(env, tmp_path, "exchange", port)
    try:
        wait_for(lambda: _stored(tmp_path / "candles") >= 15, 120, "recorded candles")
        assert proc.poll() is None, "kubetrade local exited"  # written while it runs
        frame = CandleStore(tmp_path / "candles").load(SERIES).to_list()
        times = [c.ts_ms for c in frame]
        assert times == sorted(set(times))
        assert all(t % 60_000 == 0 and t + 60_000 <= time.time() * 1000 for t in times)
        # what the runner decided on is what was stored: its cursor passed them all
        cursor = int(r.hget(keys.candle_cursor(NAME), "BTC/USDT") or 0)
        assert times[-1] <= cursor
        # the runner's metrics say it too (the counter catches up at the next candle)
        wait_for(lambda: _sample(metrics_port, "kubetrade_candles_recorded_total",
                                 'symbol="BTC/USDT"') >= 15, 60,
                 "the recorded counter: " + _metrics_text(metrics_port))
        # REDIS_URL is set: the series' writer lease is in Redis, and its holder is named
        holder = r.get(keys.lease(lease_name(SERIES)))
        assert holder is not None and str(holder).startswith(f"{NAME}:")
        assert _sample(metrics_port, "kubetrade_candle_recorder_leader",
                       f'recorder="{NAME}"') == 1.0
        age = _sample(metrics_port, "kubetrade_last_candle_age_seconds", 'symbol="BTC/USDT"')
        assert 0 <= age < 3 * 60  # live data: the newest closed candle is fresh
        status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
        last = {x["name"]: x["last_candles"] for x in status["strategies"]}[NAME]
        assert last[0]["symbol"] == "BTC/USDT" and last[0]["stale"] is False
    finally:
        _stop(proc)
    assert _stored(tmp_path / "candles") >= 15
    assert r.get(keys.lease(lease_name(SERIES))) is None  # given up when the runner stopped


@pytest.mark.timeout(300)
def test_replayed_candles_are_not_recorded(
    local_env: tuple[dict[str, str], Keys, Path], redis_url: str,
) -> None:
    env, keys, tmp_path = local_env
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    proc = _start(env, tmp_path, "replay:bundled")
    try:
        cursor = keys.candle_cursor(NAME)
        first = wait_for(lambda: r.hget(cursor, "BTC/USDT"), 120, "a first replayed candle")
        # 30 more candles decided on (the recorder would have written twice by now)
        wait_for(lambda: int(r.hget(cursor, "BTC/USDT") or 0) >= int(str(first)) + 30 * 60_000,
                 120, "30 replayed candles")
    finally:
        _stop(proc)
    assert not (tmp_path / "candles").exists() or _stored(tmp_path / "candles") == 0
