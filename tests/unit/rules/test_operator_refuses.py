"""In a cluster, a Strategy whose rules do not compile is refused by the operator: its
Ready condition goes False (InvalidSpec) with the message and the position, the phase is
Failed, and nothing is started (the handler gives up before observing or planning)."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.operator.handlers.strategy import reconcile


class _Clients:
    """Only the clock: a refused spec must not reach anything else (an attribute error
    here would mean the handler went on to observe or start something)."""

    def __init__(self) -> None:
        self.clock = ManualClock(1_700_000_000_000)


def test_bad_rules_strategy_gets_an_invalid_condition_and_no_runner() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "bad-rules", "namespace": "t", "generation": 3},
        "spec": {
            "algorithm": "rules",
            "symbols": ["BTC/USDT"],
            "rules": {
                "indicators": {"fast": {"ema": {"period": 12}}, "slow": {"ema": {}}},
                "entry": "crossed_above(fast, slw)",
                "exit": "crossed_below(fast, slow)",
            },
        },
    }
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match="entry, column 21"):
        asyncio.run(reconcile(_Clients(), kopf.Body(body), patch, "create",  # type: ignore[arg-type]
                              None, None, None))
    status = patch["status"]
    assert status["phase"] == "Failed"
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "entry, column 21: unknown indicator or variable 'slw'" in ready["message"]
