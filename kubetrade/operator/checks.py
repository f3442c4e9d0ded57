"""Rules that need two objects (or a judgement the API server cannot make), as pure
functions: the operator reports them as conditions and Events, it does not refuse.

- a Strategy trading a symbol its RiskPolicy's ``allowedSymbols`` excludes (every order
  for it will be refused by the risk engine);
- a RiskPolicy percentage written as a fraction (``stopLossPct: 0.05`` is 0.05 %, not
  5 %): allowed, since a tiny limit can be meant, but flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubetrade.domain.risk import RiskLimits


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def percent_fields() -> tuple[str, ...]:
    """The percentage fields of a RiskPolicy spec (camelCase) whose default is at least
    1 % (``stopLimitOffsetPct`` defaults to 0.5 %: below 1 is normal there)."""
    return tuple(
        sorted(
            _camel(n)
            for n, f in RiskLimits.model_fields.items()
            if n.endswith("_pct") and Decimal(str(f.default)) >= 1
        )
    )


def fractional_percentages(policy: Mapping[str, Any]) -> list[str]:
    """One message per percentage field of ``policy`` (a RiskPolicy spec) set between 0
    and 1 exclusive, e.g. ``spec.stopLossPct is 0.05: did you mean 5 % rather than
    0.05 %? (percentages are percent)``."""
    out = []
    for key in percent_fields():
        try:
            value = Decimal(str(policy.get(key)))
        except (InvalidOperation, ValueError):
            continue
        if 0 < value < 1:
            meant = (value * 100).normalize()
            out.append(
                f"spec.{key} is {value}: did you mean {meant:f} % rather than {value} %? "
                "(percentages are percent: 5 means 5 %)"
            )
    return out


def symbols_not_allowed(symbols: Iterable[str], policy: Mapping[str, Any]) -> list[str]:
    """The ``symbols`` the policy's ``allowedSymbols`` excludes ([] when it lists none:
    no restriction)."""
    allowed = policy.get("allowedSymbols") or []
    if not allowed:
        return []
    return [s for s in symbols if s not in allowed]
