"""SIGKILL at random points, 50+ times: after every restart Redis agrees with the
exchange (here the paper broker, whose state the runner persists): no fill lost, none
applied twice, no order sent twice, positions equal balances."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from kubetrade.exchange.replay import bundled_candles
from kubetrade.state.keys import Keys

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CYCLES = 50

STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: crashy}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 2, slowPeriod: 4}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
---
# keep the strategy trading through its losing streaks: the test needs many fills
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec:
  strategyMaxConsecutiveLosses: 0
  dailyLossLimitPct: "0"
  maxDrawdownPct: "0"
"""


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _newer_reconciliation(r: redis.Redis, key: str, since: int) -> dict[str, Any] | None:
    raw = r.get(key)
    data = json.loads(raw) if raw else None
    return data if data and data["ts_ms"] > since else None


def check_consistent(r: redis.Redis, keys: Keys, name: str, settled: bool) -> dict[str, int]:
    paper = json.loads(r.get(keys.strategy(name, "paper")) or "{}")
    engine = json.loads(r.get(keys.engine(name)) or "{}")
    orders = {cid: json.loads(v) for cid, v in r.hgetall(keys.orders(name)).items()}
    seen = r.smembers(keys.fills_seen(name))
    positions = {s: json.loads(v) for s, v in r.hgetall(keys.positions(name)).items()}
    broker_fills = paper.get("fills", [])
    broker_orders = paper.get("orders", [])
    # 0 lost fills, 0 phantom fills: what the exchange executed is exactly what we applied
    assert {f["trade_id"] for f in broker_fills} == seen
    # 0 duplicates: every order reached the exchange at most once, and every fill once
    assert len({o["client_order_id"] for o in broker_orders}) == len(broker_orders)
    assert len({f["trade_id"] for f in broker_fills}) == len(broker_fills)
    filled: Counter[str] = Counter()
    for f in broker_fills:
        filled[f["client_order_id"]] += Decimal(f["quantity"])  # type: ignore[assignment]
    for o in broker_orders:
        mine = orders[o["client_order_id"]]
        assert mine["status"] == o["status"], o["client_order_id"]
        assert Decimal(mine["filled_quantity"]) == Decimal(o["filled_quantity"])
        assert filled[o["client_order_id"]] == Decimal(o["filled_quantity"])
    on_exchange = {o["client_order_id"] for o in broker_orders}
    pending = [c for c, o in orders.items() if c not in on_exchange]
    for cid in pending:  # intents that never reached the exchange
        allowed = {"created", "unknown"} if not settled else set()
        allowed |= {"expired", "rejected"}
        assert orders[cid]["status"] in allowed, (cid, orders[cid]["status"])
    # positions equal balances
    btc = Decimal(paper.get("free", {}).get("BTC", "0")) + Decimal(
        paper.get("locked", {}).get("BTC", "0")
    )
    held = sum((Decimal(p["quantity"]) for p in positions.values()), Decimal(0))
    assert btc == held
    # closed trades appended once each
    assert r.xlen(keys.strategy_trades(name)) == int(engine.get("trades", 0))
    return {
        "pending": sum(1 for c in pending if orders[c]["status"] in ("created", "unknown")),
        "fills": len(broker_fills),
    }


def test_sigkill_at_random_points(redis_url: str, tmp_path: Path) -> None:
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    strategy = tmp_path / "crashy.yaml"
    strategy.write_text(STRATEGY)
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KUBETRADE_REDIS_PREFIX": prefix,
        "KUBETRADE_MARKET_DATA": f"replay:{csv}",
        "KUBETRADE_REPLAY_INTERVAL": "0",
        "KUBETRADE_RECONCILE_INTERVAL": "0",
        "LOG_LEVEL": "WARNING",
    }
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    rng = random.Random(1234)
    cursor_key = keys.strategy("crashy", "cursor")
    recon_key = keys.reconciliation("crashy")
    pending_after_kill = 0
    last_recon_ts = 0
    for cycle in range(CYCLES):
        before = int(r.hget(cursor_key, "BTC/USDT") or 0)
        log = (tmp_path / f"run-{cycle}.log").open("wb")
        proc = subprocess.Popen(
            [KUBETRADE, "runner", "--strategy-file", str(strategy)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            # after recovery the runner reconciles; it must find no mismatch
            recon = _wait(
                lambda since=last_recon_ts: _newer_reconciliation(r, recon_key, since),
                60, f"reconciliation of cycle {cycle}",
            )
            assert recon["ok"], recon
            last_recon_ts = recon["ts_ms"]
            steps = rng.randint(1, 60)
            target = before + steps * 60_000
            _wait(
                lambda p=proc, t=target: int(r.hget(cursor_key, "BTC/USDT") or 0) >= t
                or p.poll() is not None,
                60, f"{steps} candles in cycle {cycle}",
            )
            assert proc.poll() is None, (tmp_path / f"run-{cycle}.log").read_text()[-2000:]
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0, 0.005))  # land between the commits of a candle
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        pending_after_kill += check_consistent(r, keys, "crashy", settled=False)["pending"]
    # one last clean run resolves every in-doubt order
    done = subprocess.run(
        [KUBETRADE, "runner", "--strategy-file", str(strategy), "--max-candles", "5"],
        env=env, capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    stats = check_consistent(r, keys, "crashy", settled=True)
    raw_recon: Any = r.get(recon_key)
    recon = json.loads(raw_recon)
    assert recon["ok"], recon
    assert stats["fills"] >= 20, "the kills must land while the strategy is trading"
    print(
        f"\nSIGKILL cycles={CYCLES} fills={stats['fills']} "
        f"kills-with-order-in-doubt={pending_after_kill}"
    )
