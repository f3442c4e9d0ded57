"""``Strategy.spec.parameters`` in the CRD: the union of every algorithm's parameters.

One structural schema cannot switch on ``spec.algorithm``, so ``parameters`` declares
every algorithm's fields (bounds widened to cover them all, descriptions naming which
algorithm takes what), and CEL rules at spec level say what each algorithm takes: no
foreign fields, its required ones, its own bounds where the union's are wider, and its
cross-field rules (``CROSS_RULES``) with defaults filled in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubetrade.resources.algorithms import CROSS_RULES, algorithms
from kubetrade.resources.openapi import Schema, model_schema


def _cel_literal(value: Any, kind: str) -> str:
    number = Decimal(str(value))
    if kind == "integer":
        return str(int(number))
    text = format(number.normalize(), "f")
    return text if "." in text else text + ".0"


def _param_schemas() -> dict[str, Schema]:
    return {name: model_schema(model) for name, model in sorted(algorithms().items())}


def _widen(current: Schema, prop: Schema) -> None:
    """Widen ``current`` (the union's property) to also admit ``prop``."""
    if current["type"] != prop["type"]:
        current["type"] = "number"
    for plain, flag, pick in (
        ("minimum", "exclusiveMinimum", min),
        ("maximum", "exclusiveMaximum", max),
    ):
        if plain not in current or plain not in prop:
            current.pop(plain, None)
            current.pop(flag, None)
            continue
        if current[plain] == prop[plain]:
            if not (current.get(flag) and prop.get(flag)):
                current.pop(flag, None)
        elif pick(current[plain], prop[plain]) == prop[plain]:
            current[plain] = prop[plain]
            if prop.get(flag):
                current[flag] = True
            else:
                current.pop(flag, None)


def _union(per_algo: dict[str, Schema]) -> tuple[dict[str, Schema], dict[str, list[str]]]:
    """(every parameter with bounds wide enough for all, the algorithms using each)."""
    union: dict[str, Schema] = {}
    users: dict[str, list[str]] = {}
    for algo, schema in per_algo.items():
        for key, prop in schema.get("properties", {}).items():
            users.setdefault(key, []).append(algo)
            current = union.get(key)
            if current is None:
                union[key] = {
                    "type": prop["type"],
                    "description": "",
                    **{b: prop[b] for b in ("minimum", "maximum") if b in prop},
                    **{b: prop[b] for b in ("exclusiveMinimum", "exclusiveMaximum") if prop.get(b)},
                }
                continue
            _widen(current, prop)
    for key, prop in union.items():
        parts = []
        for algo in users[key]:
            sub = per_algo[algo]["properties"][key]
            default = f" Default {sub['default']}." if "default" in sub else ""
            parts.append(f"{algo}: {sub['description']}{default}")
        prop["description"] = " ".join(parts)
    return union, users


def _shape_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """No parameter of another algorithm; the required ones present."""
    props: dict[str, Schema] = schema.get("properties", {})
    rules: list[Schema] = []
    foreign = sorted(set(union) - set(props))
    if foreign:
        rules.append(
            {
                "rule": guard + " && ".join(f"!has(self.parameters.{k})" for k in foreign),
                "message": f"spec.parameters: {algo} takes "
                + (f"only {', '.join(props)}" if props else "no parameters"),
                "fieldPath": ".parameters",
                "reason": "FieldValueForbidden",
            }
        )
    for key in schema.get("required", []):
        rules.append(
            {
                "rule": guard + f"has(self.parameters.{key})",
                "message": f"spec.parameters.{key} is required for {algo}",
                "fieldPath": ".parameters",
                "reason": "FieldValueRequired",
            }
        )
    return rules


def _bound_checks(prop: Schema, wide: Schema) -> list[tuple[str, str]]:
    """(CEL comparison, its text) for each bound of ``prop`` the union ``wide`` lacks."""
    checks = []
    for plain, flag, op, strict_op in (
        ("minimum", "exclusiveMinimum", ">=", ">"),
        ("maximum", "exclusiveMaximum", "<=", "<"),
    ):
        if plain not in prop:
            continue
        same = wide.get(plain) == prop[plain] and bool(wide.get(flag)) == bool(prop.get(flag))
        if same:
            continue
        literal = _cel_literal(prop[plain], wide["type"])
        checks.append(
            (
                f"{strict_op if prop.get(flag) else op} {literal}",
                f"{'>' if plain == 'minimum' else '<'}{'' if prop.get(flag) else '='} {literal}",
            )
        )
    return checks


def _bound_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """The algorithm's own bounds where the union's are wider."""
    rules: list[Schema] = []
    for key, prop in schema.get("properties", {}).items():
        for expr, text in _bound_checks(prop, union[key]):
            rules.append(
                {
                    "rule": guard + f"!has(self.parameters.{key}) || self.parameters.{key} {expr}",
                    "message": f"spec.parameters.{key} must be {text} for {algo}",
                    "fieldPath": f".parameters.{key}",
                    "reason": "FieldValueInvalid",
                }
            )
    return rules


def _cross_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """CROSS_RULES of the algorithm, absent parameters replaced by their defaults."""
    values = {}
    for key, prop in schema.get("properties", {}).items():
        kind = union[key]["type"]
        if "default" in prop:
            values[key] = (
                f"(has(self.parameters.{key}) ? self.parameters.{key} : "
                f"{_cel_literal(prop['default'], kind)})"
            )
        else:
            values[key] = f"self.parameters.{key}"
    return [
        {
            "rule": guard + template.format(**values),
            "message": message,
            "fieldPath": ".parameters",
            "reason": "FieldValueInvalid",
        }
        for template, message in CROSS_RULES.get(algo, [])
    ]


def parameters_schema() -> tuple[Schema, list[Schema]]:
    """The ``parameters`` property and the per-algorithm CEL rules at spec level."""
    per_algo = _param_schemas()
    union, _ = _union(per_algo)
    param_prop: Schema = {
        "type": "object",
        "description": "Parameters of the algorithm; absent ones take the algorithm's "
        "defaults. "
        + "; ".join(
            f"{algo}: {', '.join(s.get('properties', {})) or 'none'}"
            for algo, s in per_algo.items()
        )
        + ".",
        "default": {},
        "properties": union,
    }
    rules: list[Schema] = []
    for algo, schema in per_algo.items():
        guard = f"self.algorithm != '{algo}' || "
        rules += _shape_rules(algo, schema, union, guard)
        rules += _bound_rules(algo, schema, union, guard)
        rules += _cross_rules(algo, schema, union, guard)
    return param_prop, rules


__all__ = ["parameters_schema"]
