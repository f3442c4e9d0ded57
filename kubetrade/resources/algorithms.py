"""Which algorithms a Strategy may name, and the parameters each takes.

The trading engine owns the algorithms (``kubetrade.domain.algorithms.ALGORITHMS``);
this module reads them from there so the CRD and the engine cannot disagree (one
parameter model per algorithm: there is no second copy here).

Rules that relate two parameters (slow period above fast period) cannot be read off
a pydantic model; ``CROSS_RULES`` states them once more as CEL for the API server.
"""

from __future__ import annotations

from pydantic import BaseModel

from kubetrade.domain.algorithms import ALGORITHMS
from kubetrade.domain.registry import RULES, NoParams, params_model, registered

#: CEL rules (over ``self.parameters``, with the defaults substituted for absent
#: fields) and their messages, per algorithm.
CROSS_RULES: dict[str, list[tuple[str, str]]] = {
    "sma-crossover": [
        (
            "{slowPeriod} > {fastPeriod}",
            "spec.parameters.slowPeriod must be greater than spec.parameters.fastPeriod "
            "for sma-crossover",
        )
    ],
    "rsi-mean-reversion": [
        (
            "{oversold} < {overbought}",
            "spec.parameters.oversold must be below spec.parameters.overbought "
            "for rsi-mean-reversion",
        )
    ],
}


#: ``rules`` in the CRD: no ``spec.parameters`` (everything is in ``spec.rules``), and
#: ``spec.rules`` goes with ``algorithm: rules`` only.
CROSS_RULES["rules"] = [("has(self.rules)", "spec.rules is required when algorithm is rules")]
for _name in ALGORITHMS:
    CROSS_RULES.setdefault(_name, []).append(
        ("!has(self.rules)", f"spec.rules is only for algorithm rules, not {_name}")
    )


def algorithms() -> dict[str, type[BaseModel]]:
    """What the CRD knows: the built-in algorithms and ``rules`` (no parameters).

    Plugins are not in the CRD (the operator's image does not carry them); see
    ``installed_algorithms``."""
    return {**ALGORITHMS, RULES: NoParams}


def installed_algorithms() -> dict[str, type[BaseModel]]:
    """Every algorithm this process can run: built-ins, ``rules`` and installed plugins
    (``kubetrade.algorithms`` entry points), name -> parameters model."""
    return {name: params_model(name) for name in registered()}
