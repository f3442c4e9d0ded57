"""RiskPolicy percentages written as fractions: ``stopLossPct: 0.05`` is 0.05 %, not 5 %.

Allowed (a tiny limit can be meant) but flagged wherever a policy is read: the
operator's ``Warning`` condition and Event, ``kubetrade local``, ``validate`` and
``preflight`` (a warning line), so a stop meant at 5 % is not silently one at 0.05 %.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def limits_fractions(limits: RiskLimits) -> list[str]:
    """:func:`fractional_percentages` of a parsed policy (its camelCase form)."""
    return fractional_percentages(limits.model_dump(mode="json", by_alias=True))


__all__ = ["fractional_percentages", "limits_fractions", "percent_fields"]
