"""Every algorithm a Strategy may name: the built-ins, ``rules`` and installed plugins.

Algorithms are found through the ``kubetrade.algorithms`` entry point group
(``importlib.metadata``): kubetrade's own pyproject registers the three built-ins and
``rules`` there, and a plugin package registers its classes the same way::

    [project.entry-points."kubetrade.algorithms"]
    my-breakout = "my_package.algo:MyBreakout"

An entry point's name must equal its class's ``algorithm``; the class must subclass
``kubetrade.domain.algorithms.Algorithm`` and carry a pydantic ``Params`` model. A
plugin cannot take a built-in's name. Entry points that fail to load, or break these
rules, are left out and reported by ``problems()``.
When kubetrade runs from a source tree whose metadata is missing, the built-ins are
still there.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from kubetrade.domain.algorithms import BUILTINS, Algorithm, validate_parameters
from kubetrade.domain.rules.algorithm import RulesAlgorithm
from kubetrade.domain.rules.spec import RulesSpec

ENTRY_POINT_GROUP = "kubetrade.algorithms"
RULES = "rules"


def _builtins() -> dict[str, type[Algorithm[Any, Any]]]:
    return {**BUILTINS, RULES: RulesAlgorithm}


def _check(name: str, obj: object) -> str | None:
    if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
        return "is not a subclass of kubetrade.domain.algorithms.Algorithm"
    if getattr(obj, "algorithm", None) != name:
        return f"its class says algorithm = {getattr(obj, 'algorithm', None)!r}"
    params = getattr(obj, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return "has no pydantic Params model"
    return None


@lru_cache(maxsize=1)
def _discover() -> tuple[dict[str, type[Algorithm[Any, Any]]], dict[str, str]]:
    own = _builtins()
    found = dict(own)
    problems: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in own and not ep.value.startswith("kubetrade."):
            problems[ep.name] = f"{ep.value}: a plugin cannot replace the built-in {ep.name!r}"
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            problems[ep.name] = f"{ep.value}: cannot be imported: {type(exc).__name__}: {exc}"
            continue
        why = _check(ep.name, cls)
        if why is not None:
            problems[ep.name] = f"{ep.value}: {why}"
            continue
        found[ep.name] = cls
    return found, problems


def registered() -> dict[str, type[Algorithm[Any, Any]]]:
    """Name -> class for every algorithm available in this process."""
    return dict(_discover()[0])


def problems() -> dict[str, str]:
    """Entry points that were left out, with why."""
    return dict(_discover()[1])


def refresh() -> None:
    """Forget what was discovered (after installing a plugin into a running process)."""
    _discover.cache_clear()


def params_model(algorithm: str) -> type[BaseModel]:
    """The ``Params`` model of ``algorithm``; ValueError naming the known ones if unknown."""
    cls = registered().get(algorithm)
    if cls is None:
        raise ValueError(
            f"algorithm: unknown algorithm {algorithm!r}; choose one of "
            f"{sorted(registered())}"
        )
    if algorithm == RULES:
        return NoParams
    return cls.Params


class NoParams(BaseModel):
    """``rules`` takes no ``spec.parameters``: everything is in ``spec.rules``."""

    model_config = {"extra": "forbid"}


def create(algorithm: str, parameters: dict[str, Any] | None, rules: Any) -> Algorithm[Any, Any]:
    """A fresh algorithm (see ``kubetrade.domain.algorithms.create_algorithm``)."""
    if algorithm == RULES and rules is None and parameters and "rules" in parameters:
        # spec.validated_parameters() carries spec.rules this way (runner spec, snapshots)
        parameters = dict(parameters)
        rules = parameters.pop("rules")
    params = validate_parameters(algorithm, parameters)
    cls = registered()[algorithm]
    if algorithm == RULES:
        if rules is None:
            raise ValueError("algorithm rules needs spec.rules (indicators, entry, exit)")
        spec = rules if isinstance(rules, RulesSpec) else RulesSpec.model_validate(rules)
        return cls(spec)
    if rules is not None:
        raise ValueError(f"spec.rules is only for algorithm rules, not {algorithm}")
    return cls(params)
