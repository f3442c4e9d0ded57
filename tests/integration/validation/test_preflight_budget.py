"""The pre-flight's exchange calls (the operator's, through its pre-flight Job) spend the
runners' shared rate budgets in Redis (issue 15 item 2), and its report is kept per
strategy for the operator's CapitalAllocated condition (item 3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.state.keys import Keys
from tests.integration.validation.test_preflight_fake_exchange import setup

__all__ = ["setup"]  # the fixture, shared with the pre-flight tests


async def test_preflight_spends_the_shared_budget_and_keeps_its_report_per_strategy(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    redis_client: Any, redis_url: str,
) -> None:
    prefix = "pf-budget"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KUBETRADE_REDIS_PREFIX", prefix)
    monkeypatch.setenv("KUBETRADE_EGRESS_IP", "egress-1")
    code = await asyncio.to_thread(main, ["preflight", "--strategy-file", str(setup["spec"]),
                                          "--report-dir", str(setup["reports"]), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0, printed
    keys = Keys(prefix)
    weight_keys = [k async for k in redis_client.scan_iter(keys.budget("ip:egress-1", "weight*"))]
    spent = sum([int(await redis_client.get(k)) for k in weight_keys])
    # exchangeInfo 20 + account 20 (x2: read twice) + time + apiRestrictions, at least
    assert spent >= 40, weight_keys
    assert not [k async for k in redis_client.scan_iter(keys.budget("account:*", "*"))]  # no order
    stored = json.loads(await redis_client.get(keys.strategy("btc-live", "preflight")))
    assert stored == printed
    capital = next(c for c in stored["checks"] if c["name"] == "Capital Allocation")
    assert capital["status"] == "PASS"
