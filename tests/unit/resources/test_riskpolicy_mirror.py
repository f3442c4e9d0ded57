"""RiskPolicySpec is the engine's RiskLimits in CR form: same fields, defaults and bounds.

If they drift, a policy the API server accepts could be refused by the runner (or the
other way round), so the difference must fail here rather than in a pod.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubetrade.resources import RiskPolicySpec

risk = pytest.importorskip("kubetrade.domain.risk")

_IGNORED = {"description", "title"}


def _shape(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in prop.items() if k not in _IGNORED}
        for name, prop in schema["properties"].items()
    }


def test_same_fields_defaults_and_bounds() -> None:
    ours = _shape(RiskPolicySpec.model_json_schema(by_alias=True))
    theirs = _shape(risk.RiskLimits.model_json_schema(by_alias=True))
    # The CR spells out BASE/QUOTE as a pattern; the engine only checks for the slash.
    assert ours["allowedSymbols"]["items"].pop("pattern")
    assert ours == theirs


def test_spec_converts_to_engine_limits() -> None:
    spec = RiskPolicySpec.model_validate({"stopLossPct": 2.5, "allowedSymbols": ["BTC/USDT"]})
    limits = spec.to_limits()
    assert isinstance(limits, risk.RiskLimits)
    assert str(limits.stop_loss_pct) == "2.5"
    assert limits.allowed_symbols == ["BTC/USDT"]
