"""``Strategy.spec.parameters`` in the CRD: a map checked by CEL against each
algorithm's own parameters.

One structural schema cannot switch on ``spec.algorithm``, and a schema that declares
the parameters as properties lets the API server *prune* a misspelt one without a word
whenever the client does not ask for strict field validation (Helm, the Python client,
``kubectl --validate=false``): ``fastPerod: 5`` vanished and the Strategy traded with the
default fast period. So ``parameters`` is a map (any key kept), and CEL rules at spec
level say what each algorithm takes: no key it does not know (the message names the
key), its required ones, each value's type and bounds, and its cross-field rules
(``CROSS_RULES``) with defaults filled in. An algorithm not built in is a plugin: the
CRD accepts it only with ``spec.image`` (the image that has it installed) and checks
none of its keys (the values stay numbers: one structural schema for every algorithm);
the plugin's own model checks them when its runner starts.
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


#: At most this many keys in ``spec.parameters`` (bounds the CEL rules' cost).
MAX_PARAMETERS = 64


def _shape_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """Only the algorithm's own keys (the first other one named); the required ones."""
    props: dict[str, Schema] = schema.get("properties", {})
    rules: list[Schema] = []
    own = "[" + ", ".join(f"'{k}'" for k in props) + "]"
    takes = f"only {', '.join(props)}" if props else "no parameters"
    rules.append(
        {
            "rule": guard + f"self.parameters.all(k, k in {own})",
            "messageExpression": "'spec.parameters.' + self.parameters.filter(k, !(k in "
            + own
            + f"))[0] + ': not a parameter of {algo} ({algo} takes {takes})'",
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


def _type_rules(union: dict[str, Schema], builtin_guard: str) -> list[Schema]:
    """Whole numbers where a built-in algorithm wants an integer (the map's values are
    numbers, which CEL reads as doubles); a plugin's keys are its own."""
    rules: list[Schema] = []
    for key, prop in sorted(union.items()):
        if prop["type"] != "integer":
            continue
        value = f"self.parameters.{key}"
        rules.append(
            {
                "rule": builtin_guard + f"!has({value}) || double(int({value})) == {value}",
                "message": f"spec.parameters.{key}: Invalid value: must be a whole number",
                "fieldPath": ".parameters",
                "reason": "FieldValueInvalid",
            }
        )
    return rules


def _bound_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """The algorithm's own bounds (the map declares none)."""
    rules: list[Schema] = []
    for key, prop in schema.get("properties", {}).items():
        for expr, text in _bound_checks(prop, {"type": "number"}):
            rules.append(
                {
                    "rule": guard + f"!has(self.parameters.{key}) || self.parameters.{key} {expr}",
                    "message": f"spec.parameters.{key}: Invalid value: must be {text} "
                    f"for {algo}",
                    "fieldPath": ".parameters",
                    "reason": "FieldValueInvalid",
                }
            )
    return rules


def _cross_rules(algo: str, schema: Schema, union: dict[str, Schema], guard: str) -> list[Schema]:
    """CROSS_RULES of the algorithm, absent parameters replaced by their defaults."""
    values = {}
    for key, prop in schema.get("properties", {}).items():
        kind = "number"  # the map's values are numbers: CEL doubles
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


def _plugin_rules(builtins: list[str]) -> list[Schema]:
    """A name not built in is a plugin: only with spec.image, and never with spec.rules."""
    known = "[" + ", ".join(f"'{name}'" for name in builtins) + "]"
    return [
        {
            "rule": f"self.algorithm in {known} || has(self.image)",
            "messageExpression": "'algorithm ' + self.algorithm + ' is not built in "
            f"({', '.join(builtins)}): a plugin algorithm needs spec.image, an image built "
            "FROM the kubetrade image with the plugin installed (docs/plugins.md)'",
            "fieldPath": ".image",
            "reason": "FieldValueRequired",
        },
        {
            "rule": f"self.algorithm in {known} || !has(self.rules)",
            "messageExpression": "'spec.rules is only for algorithm rules, not ' + "
            "self.algorithm",
            "fieldPath": ".rules",
            "reason": "FieldValueForbidden",
        },
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
        + ". A key the algorithm does not take is refused (never pruned); a plugin "
        "algorithm's keys are checked by the plugin when its runner starts. "
        + " ".join(f"{key}: {prop['description']}" for key, prop in sorted(union.items())),
        "default": {},
        "maxProperties": MAX_PARAMETERS,
        "additionalProperties": {"type": "number"},
    }
    builtins = sorted(per_algo)
    builtin_guard = "!(self.algorithm in [" + ", ".join(f"'{a}'" for a in builtins) + "]) || "
    rules: list[Schema] = _plugin_rules(builtins) + _type_rules(union, builtin_guard)
    for algo, schema in per_algo.items():
        guard = f"self.algorithm != '{algo}' || "
        rules += _shape_rules(algo, schema, union, guard)
        rules += _bound_rules(algo, schema, union, guard)
        rules += _cross_rules(algo, schema, union, guard)
    return param_prop, rules


__all__ = ["parameters_schema"]
