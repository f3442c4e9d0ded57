"""Rules that need two objects (or a judgement the API server cannot make), as pure
functions: the operator reports them as conditions and Events, it does not refuse.

- a Strategy trading a symbol its RiskPolicy's ``allowedSymbols`` excludes (every order
  for it will be refused by the risk engine);
- a RiskPolicy percentage written as a fraction (``stopLossPct: 0.05`` is 0.05 %, not
  5 %): allowed, since a tiny limit can be meant, but flagged (the rule itself is
  :mod:`kubetrade.domain.percentages`, which the local commands apply too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def symbols_not_allowed(symbols: Iterable[str], policy: Mapping[str, Any]) -> list[str]:
    """The ``symbols`` the policy's ``allowedSymbols`` excludes ([] when it lists none:
    no restriction)."""
    allowed = policy.get("allowedSymbols") or []
    if not allowed:
        return []
    return [s for s in symbols if s not in allowed]
