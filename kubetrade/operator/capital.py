"""The ``CapitalAllocated`` condition of a Strategy (issue 15 item 3), pure.

Its budget (``initialCapital``, or ``capitalPctOfAccount`` of the account's quote
balance) against the account's free balance. The operator holds no exchange keys (a
Strategy's credentials Secret is mounted only into its pre-flight Job and its runner),
so it does not call the exchange: the verdict is the pre-flight's "Capital Allocation"
check, which the pre-flight Job stores per strategy in Redis
(``state.reports.read_strategy_preflight``) with the configuration hash its Job was
given (``KUBETRADE_CONFIG_HASH``): a report counts only for that configuration. The
flip to False is posted as a warning Event and audited (``plan.WARNED_CONDITIONS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetrade.operator.status import Conditions

CONDITION = "CapitalAllocated"
#: The pre-flight check this condition mirrors (``domain.preflight.CAPITAL_ALLOCATION``).
CHECK = "Capital Allocation"
#: The pre-flight check status -> (condition status, reason).
_VERDICTS: dict[str, tuple[bool | None, str]] = {
    "PASS": (True, "BudgetFits"),
    "FAIL": (False, "BudgetExceedsFreeBalance"),
    "WARN": (None, "BalanceUnreadable"),
}


def capital_check(report: Mapping[str, Any] | None, config_hash: str) -> dict[str, Any] | None:
    """The "Capital Allocation" check of ``report`` when the report is of the
    configuration ``config_hash``; else None."""
    if not report or report.get("config_hash") != config_hash:
        return None
    for check in report.get("checks") or []:
        if isinstance(check, dict) and check.get("name") == CHECK:
            return check
    return None


def set_capital_condition(
    conds: Conditions, *, live: bool, check: Mapping[str, Any] | None, now_ms: int
) -> None:
    """Set ``CapitalAllocated`` from the pre-flight's check (``check``: None when no
    report of the configuration in force exists yet)."""
    if not live:
        conds.set(CONDITION, True, "NotRequired", "paper mode: the budget is simulated", now_ms)
        return
    if check is None:
        conds.set(CONDITION, None, "WaitingForPreflight",
                  "the pre-flight Job checks the budget against the account's free balance "
                  "(the operator holds no exchange keys)", now_ms)
        return
    status, reason = _VERDICTS.get(str(check.get("status")), (None, "BalanceUnreadable"))
    conds.set(CONDITION, status, reason, str(check.get("message") or ""), now_ms)
