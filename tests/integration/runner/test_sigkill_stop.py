"""The on-exchange stop protects a live position while its runner is dead: SIGKILL a
live runner (real ccxt client, fake Binance) holding a position, move the fake's price
through the stop, restart: the exchange closed the position at the stop, the restarted
runner books that fill (looked up by the stop's client order id before anything else),
and no order reached the exchange twice. The same after a SIGTERM (the runner scaled to
0 by the operator, e.g. after a config change whose pre-flight failed)."""

from __future__ import annotations

import json
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
from tests.fakes.binance.state import FakeOrder
from tests.integration.runner.test_sigkill_live import STRATEGY, _wait, runner_env

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
NAME = "livey"


def _resting_stop(fake: FakeBinance) -> FakeOrder | None:
    with fake.state.lock:
        live = [o for o in fake.state.orders.values()
                if o.type == "STOP_LOSS_LIMIT" and o.status == "NEW"]
    return live[0] if live else None


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    fake = FakeBinance(weight_limit=10**9).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_stop_on_exchange_closes_the_position_while_the_runner_is_dead(
    redis_url: str, tmp_path: Path, fake_binance: FakeBinance, sig: signal.Signals
) -> None:
    """SIGKILL: a crash. SIGTERM: the operator scaling the runner to 0 (a config change
    whose pre-flight failed, with no passed runner to keep): the runner ends without
    touching its stop, which goes on protecting the position on the exchange."""
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    strategy = tmp_path / "livey.yaml"
    strategy.write_text(STRATEGY)
    prefix = f"stop-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    env = runner_env(redis_url, fake_binance, csv, prefix, replay_interval="0.02")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    stop: FakeOrder | None = None
    for attempt in range(10):  # until the kill lands while a position is protected
        with (tmp_path / f"run-{attempt}.log").open("wb") as log:
            proc = subprocess.Popen([KUBETRADE, "runner", "--strategy-file", str(strategy)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait(lambda p=proc: _resting_stop(fake_binance) or p.poll() is not None,
                      120, "a protected position")
                proc.send_signal(sig)
                proc.wait(30)
            finally:
                if proc.poll() is None:
                    proc.kill()
        stop = _resting_stop(fake_binance)
        if stop is not None:
            break
    assert stop is not None, "never killed while a position was protected"
    if sig is signal.SIGTERM:
        # the first cancel stopped it: no re-cancel after 5 s was needed (on Python 3.11
        # redis-py's asyncio.wait_for swallowed it and the runner went on trading)
        slow = [line for p in sorted(tmp_path.glob("run-*.log"))
                for line in p.read_text().splitlines() if "runner.stop_slow" in line]
        assert slow == [], slow[:1]
    cid = stop.client_order_id
    raw: Any = r.hget(keys.orders(NAME), cid)
    # the dead runner left it resting (or in doubt: killed before the answer was written)
    assert json.loads(raw)["status"] in ("created", "unknown", "open")
    held: Any = r.hget(keys.positions(NAME), "BTC/USDT")
    assert held, "the runner died holding the position"
    # --- while it is dead, the price falls through the stop: the exchange sells -------
    fake_binance.set_price("BTCUSDT", stop.stop_price)
    assert fake_binance.state.orders[stop.order_id].status == "FILLED"
    (trade,) = [t for t in fake_binance.state.trades if t.client_order_id == cid]
    assert trade.price == stop.stop_price and trade.qty == stop.orig_qty
    killed_ms = time.time_ns() // 1_000_000
    # --- restart: the fill is looked up by client id and booked once --------------------
    done = subprocess.run(
        [KUBETRADE, "runner", "--strategy-file", str(strategy), "--max-candles", "1"],
        env=env, capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    raw = r.hget(keys.orders(NAME), cid)
    assert json.loads(raw)["status"] == "filled"
    assert str(trade.trade_id) in r.smembers(keys.fills_seen(NAME))  # type: ignore[operator]
    closed: Any = r.xrange(keys.strategy_trades(NAME))
    at_stop = [f for _, f in closed if Decimal(f["exit_price"]) == stop.stop_price]
    assert len(at_stop) == 1, closed[-3:]
    assert at_stop[0]["exit_reason"] == "stop_loss_exchange"  # closed by the exchange's stop
    audit: Any = r.xrange(keys.audit)
    recovered = [json.loads(f.get("detail", "{}")) for _, f in audit
                 if f.get("action") == "order.recovered"]
    assert any(d.get("client_order_id") == cid and d.get("outcome") == "found"
               for d in recovered), recovered[-5:]
    recon: Any = json.loads(r.get(keys.reconciliation(NAME)))  # type: ignore[arg-type]
    assert recon["ts_ms"] >= killed_ms and recon["ok"], recon
    ids = fake_binance.state.accepted_client_ids
    assert len(ids) == len(set(ids)) and fake_binance.state.duplicate_client_ids() == []
