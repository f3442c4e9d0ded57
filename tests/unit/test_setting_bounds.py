"""Issue 17 item 4: settings have sane upper bounds, and the refusal states the rule
(``referenceMaxAgeSeconds: 1e20`` turned the stale-price check off)."""

from __future__ import annotations

import pytest

from kubetrade.state.desired import DesiredStateError, validate_risk_spec


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("referenceMaxAgeSeconds", 1e15, "less than or equal to 86400"),
        ("orderIntervalSeconds", 10**9, "less than or equal to 86400"),
        ("maxOrdersPerInterval", 10**9, "less than or equal to 100000"),
        ("strategyMaxConsecutiveLosses", 10**6, "less than or equal to 1000"),
        ("strategyReEnableCheckHours", 10**6, "less than or equal to 8760"),
    ],
)
def test_a_value_past_its_bound_is_refused_naming_field_and_rule(
    field: str, value: float, rule: str
) -> None:
    with pytest.raises(DesiredStateError) as refused:
        validate_risk_spec({field: value})
    assert field in str(refused.value) and rule in str(refused.value)


def test_the_bounds_themselves_are_accepted() -> None:
    spec = validate_risk_spec({"referenceMaxAgeSeconds": 86400, "orderIntervalSeconds": 86400})
    assert spec["referenceMaxAgeSeconds"] == 86400


def test_1e20_is_refused_naming_the_field() -> None:
    with pytest.raises(DesiredStateError, match="referenceMaxAgeSeconds"):
        validate_risk_spec({"referenceMaxAgeSeconds": 1e20})
