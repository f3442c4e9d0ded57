"""RiskPolicy handlers: the status says which Strategies use the policy, and a
``Warning`` condition (with an Event) flags a percentage written as a fraction.

Strategies read their policy through the ``riskpolicy_idx`` index on their own timer, so
a changed policy reaches them without a handler here.
"""

from __future__ import annotations

from typing import Any

import kopf

from kubetrade.domain.percentages import fractional_percentages
from kubetrade.operator.clients import clients_of
from kubetrade.operator.handlers.indexes import StrategyIndex, strategies_in
from kubetrade.operator.handlers.support import on_timer, write_status
from kubetrade.operator.status import Conditions

PLURAL = "riskpolicies"


async def riskpolicy_tick(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    strategy_idx: StrategyIndex | None = None,
    **_: Any,
) -> None:
    """``status.usedBy``: the Strategies of the namespace that reference this policy."""
    meta = body["metadata"]
    status = dict(body.get("status") or {})
    users = sorted(
        s.name
        for s in strategies_in(strategy_idx, meta["namespace"])
        if s.risk_policy_ref == meta["name"]
    )
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    now = clients_of(memo).clock.now_ms()
    conds.set("Ready", True, "Accepted", f"used by {len(users)} Strategy(ies)", now)
    fractions = fractional_percentages(dict(body.get("spec") or {}))
    if fractions:
        conds.set("Warning", True, "FractionalPercentage", "; ".join(fractions), now)
    else:
        conds.set("Warning", False, "NoWarning", "nothing suspicious", now)
    for flipped in conds.flipped:
        if flipped["type"] == "Warning" and flipped["status"] == "True":
            kopf.warn(body, reason=flipped["reason"], message=flipped["message"])
    write_status(
        patch,
        status,
        {
            "usedBy": users,
            "observedGeneration": meta.get("generation"),
            "conditions": conds.items,
        },
    )


def register(registry: kopf.OperatorRegistry, interval: float) -> None:
    """Register the RiskPolicy timer (every ``interval`` seconds)."""
    on_timer(
        registry, PLURAL, riskpolicy_tick, id="riskpolicy_tick", interval=interval,
        initial_delay=0.5,
    )
