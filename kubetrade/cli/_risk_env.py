"""The runbook's risk settings as environment variables (``STOP_LOSS_PCT=5.0``,
``DAILY_LOSS_LIMIT_PCT=3.0``, ``MAX_POSITION_SIZE_PCT``, ``MAX_CONCURRENT_POSITIONS``;
percent, as the runbook writes them): the RiskPolicy of a Strategy run from files whose
``riskPolicyRef`` names no RiskPolicy in those files. One reading for every command that
runs a Strategy from files (``kubetrade local``, ``kubetrade runner --strategy-file``,
``kubetrade preflight --strategy-file``), so pre-flight judges the limits that trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kubetrade.cli._config import ConfigError

#: (variable, RiskPolicy spec field in the manifests' camelCase)
RUNBOOK_RISK_VARIABLES = (
    ("STOP_LOSS_PCT", "stopLossPct"),
    ("DAILY_LOSS_LIMIT_PCT", "dailyLossLimitPct"),
    ("MAX_POSITION_SIZE_PCT", "maxPositionSizePct"),
    ("MAX_CONCURRENT_POSITIONS", "maxConcurrentPositions"),
)


def risk_spec_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The RiskPolicy spec fields the variables set (``{}`` when none is set).

    Raises ConfigError naming the variable, its value and the field's rule.
    """
    from kubetrade.resources import RiskPolicySpec

    spec: dict[str, Any] = {}
    for variable, field in RUNBOOK_RISK_VARIABLES:
        raw = (env.get(variable) or "").strip()
        if not raw:
            continue
        try:
            RiskPolicySpec.model_validate({field: raw})
        except ValidationError as exc:
            rule = exc.errors()[0]["msg"]
            raise ConfigError(f"{variable}={raw}: {rule} (RiskPolicy {field})") from None
        spec[field] = raw
    return spec


def risk_policy_from_env(name: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """A RiskPolicy manifest named ``name`` from the variables, or None when none is set."""
    spec = risk_spec_from_env(env)
    if not spec:
        return None
    return {"apiVersion": "kubetrade.io/v1alpha1", "kind": "RiskPolicy",
            "metadata": {"name": name}, "spec": spec}
