"""``kubectl get strategies -o wide`` shows a live runner's divergence from its paper
twin and its size step (issue 20), folded by the real operator from the summary fields
the twin writes into Redis (the test plays the runner: no kubelet in the bed)."""

from __future__ import annotations

import time
from typing import Any

import redis

from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for
from tests.integration.operator.test_operator import POLICY, strategy


def test_wide_columns_show_divergence_and_size(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy("btc-twin"))
    r.hset(Keys(bed.prefix).summary("btc-twin"), mapping={
        "phase": "Running", "pnl": "-3.2", "equity": "9996.8", "trades": "2",
        "win_rate": "0.5", "open_positions": "0", "halted_reason": "",
        "updated_ms": str(int(time.time() * 1000)),
        "twin_divergence_pct": "0.4213", "size_pct": "25", "twin_pnl": "1.1"})
    wide = wait_for(
        lambda: (out := bed.kubectl("get", "strategies", "-o", "wide")) and "0.42%" in out
        and out, 30, "Divergence in kubectl get strategies -o wide")
    header, row = wide.splitlines()[:2]
    assert "DIVERGENCE" in header and "SIZE" in header
    assert "0.42%" in row and "25%" in row
    narrow = bed.kubectl("get", "strategies")
    assert "DIVERGENCE" not in narrow and "0.42%" not in narrow
