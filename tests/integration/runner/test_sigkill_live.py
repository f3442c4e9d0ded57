"""SIGKILL a live-mode runner (real ccxt client, fake Binance server) at random points,
50 times: two runs of 25 with their own seeds, which `make test`'s two workers share.
After each kill, Redis never claims more than the exchange did; after each restart the
runner has looked up every in-doubt order by client id, and what it holds equals the
exchange: the same orders, every fill once, positions equal balances."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from kubetrade.exchange.replay import bundled_candles
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CYCLES = 25
NAME = "livey"

STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: livey}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 2, slowPeriod: 4}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: live
  exchange: {name: binance, testnet: true, credentialsSecret: binance-keys}
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec:
  strategyMaxConsecutiveLosses: 0
  dailyLossLimitPct: "0"
  maxDrawdownPct: "0"
  priceCollarPct: "0"
"""
IN_DOUBT = {"created", "unknown", "open", "partially_filled"}


def runner_env(redis_url: str, fake: FakeBinance, csv: Path, prefix: str,
               replay_interval: str) -> dict[str, str]:
    """The environment of a live `kubetrade runner` on the fake Binance, replaying
    ``csv`` at ``replay_interval`` seconds per candle, reconciling only at start."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "KUBETRADE_REDIS_PREFIX": prefix,
        "KUBETRADE_EXCHANGE_URL": fake.url,
        "BINANCE_API_KEY": fake.api_key,
        "BINANCE_SECRET_KEY": fake.secret,
        "KUBETRADE_MARKET_DATA": f"replay:{csv}",
        "KUBETRADE_REPLAY_INTERVAL": replay_interval,
        "KUBETRADE_RECONCILE_INTERVAL": "0",
        "LOG_LEVEL": "WARNING",
    }


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _exchange(fake: FakeBinance) -> tuple[dict[str, Any], dict[str, set[str]], Decimal]:
    with fake.state.lock:
        orders = {o.client_order_id: o for o in fake.state.orders.values()}
        by_cid: dict[str, set[str]] = {}
        for t in fake.state.trades:
            by_cid.setdefault(t.client_order_id, set()).add(str(t.trade_id))
        btc = fake.state.balances.get("BTC", Decimal(0)) + fake.state.locked.get("BTC", Decimal(0))
        ids = list(fake.state.accepted_client_ids)
    assert len(ids) == len(set(ids)), "an order reached the exchange twice"
    return orders, by_cid, btc


def _local(r: redis.Redis, keys: Keys) -> tuple[dict[str, Any], set[str]]:
    raw: Any = r.hgetall(keys.orders(NAME))
    fills: Any = r.smembers(keys.fills_seen(NAME))
    return {c: json.loads(v) for c, v in raw.items()}, fills


def check_after_kill(r: redis.Redis, keys: Keys, fake: FakeBinance) -> list[str]:
    """Dead runner: Redis may lag the exchange only for orders it marks as in doubt."""
    remote, trades, _ = _exchange(fake)
    local, seen = _local(r, keys)
    all_trades = set().union(*trades.values()) if trades else set()
    assert seen <= all_trades, "a fill in Redis that the exchange never made"
    for cid, o in local.items():
        if o["status"] in IN_DOUBT:
            continue
        got = trades.get(cid, set())
        assert got <= seen, f"fills of settled order {cid} lost"
        if cid in remote:
            assert o["status"] == remote[cid].status.lower(), cid
    for cid in remote:
        assert cid in local, f"exchange order {cid} unknown to Redis (intent not persisted)"
    return [c for c, o in local.items() if o["status"] in IN_DOUBT]


def check_settled(r: redis.Redis, keys: Keys, fake: FakeBinance, cids: list[str]) -> None:
    """After restart recovery: the orders that were in doubt now equal the exchange's."""
    remote, trades, _ = _exchange(fake)
    local, seen = _local(r, keys)
    for cid in cids:
        o = local[cid]
        if cid in remote:
            want = remote[cid].status.lower()
            if want in ("new", "partially_filled"):
                assert o["status"] in ("open", "partially_filled", "canceled", "filled"), cid
            else:
                assert o["status"] == want, (cid, o["status"], want)
            assert trades.get(cid, set()) <= seen, f"fills of {cid} not recovered"
        else:
            assert o["status"] in ("expired", "rejected"), (cid, o["status"])


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    """The fake with a weight limit out of the way: 50 restarts in a few minutes would
    otherwise spend Binance's per-minute budget on start-up reads (rate limiting has
    its own tests)."""
    fake = FakeBinance(weight_limit=10**9).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [4321, 8765])
def test_sigkill_live_runner_against_fake_binance(
    redis_url: str, tmp_path: Path, fake_binance: FakeBinance, seed: int
) -> None:
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    strategy = tmp_path / "livey.yaml"
    strategy.write_text(STRATEGY)
    prefix = f"live-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    env = runner_env(redis_url, fake_binance, csv, prefix, replay_interval="0")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    rng = random.Random(seed)
    cursor_key = keys.strategy(NAME, "cursor")
    recon_key = keys.reconciliation(NAME)
    last_recon = 0
    in_doubt: list[str] = []
    resolved = 0
    for cycle in range(CYCLES):
        before = int(r.hget(cursor_key, "BTC/USDT") or 0)
        log_path = tmp_path / f"run-{cycle}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [KUBETRADE, "runner", "--strategy-file", str(strategy)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                recon = _wait(
                    lambda since=last_recon: (raw := r.get(recon_key))
                    and json.loads(raw)["ts_ms"] > since and json.loads(raw),
                    60, f"reconciliation of cycle {cycle}",
                )
                last_recon = recon["ts_ms"]
                assert recon["ok"], recon
                check_settled(r, keys, fake_binance, in_doubt)
                resolved += len(in_doubt)
                target = before + rng.randint(1, 25) * 60_000
                _wait(
                    lambda p=proc, t=target: int(r.hget(cursor_key, "BTC/USDT") or 0) >= t
                    or p.poll() is not None,
                    60, f"candles of cycle {cycle}",
                )
                assert proc.poll() is None, log_path.read_text()[-2000:]
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0, 0.02))  # land inside an order round trip
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
        in_doubt = check_after_kill(r, keys, fake_binance)
    done = subprocess.run(
        [KUBETRADE, "runner", "--strategy-file", str(strategy), "--max-candles", "3"],
        env=env, capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    check_settled(r, keys, fake_binance, in_doubt)
    resolved += len(in_doubt)
    remote, trades, btc = _exchange(fake_binance)
    local, seen = _local(r, keys)
    assert seen == set().union(*trades.values())  # 0 lost fills, 0 phantom fills
    assert set(remote) <= set(local)
    assert not [c for c, o in local.items() if o["status"] in ("created", "unknown")]
    raw_recon: Any = r.get(recon_key)
    recon = json.loads(raw_recon)
    assert recon["ok"], recon  # positions + dust == exchange balances
    assert len(trades) >= 20, "the kills must land while the strategy is trading"
    print(f"\nlive SIGKILL cycles={CYCLES} exchange-orders={len(remote)} "
          f"fills={len(seen)} in-doubt-orders-resolved={resolved} BTC={btc}")
