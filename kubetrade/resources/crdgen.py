"""Generate the CustomResourceDefinitions from the pydantic models.

``python -m kubetrade.resources.crdgen crds`` (``make crds``) writes
``crds/<plural>.kubetrade.io.yaml``; when a ``charts/kubetrade`` directory sits next
to the output directory, the same files go to ``charts/kubetrade/crds/`` so Helm
installs exactly what the tests apply. A unit test fails when the committed files
drift from the models.

The models are the one statement of fields, descriptions and bounds; this module
only translates pydantic's JSON Schema into the structural OpenAPI v3 subset the API
server accepts, and adds what JSON Schema cannot say: CEL rules that relate two
fields, printer columns, short names and the status subresource.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubetrade.resources.algorithms import CROSS_RULES, algorithms
from kubetrade.resources.common import GROUP, VERSION
from kubetrade.resources.emergency import EMERGENCY_NAME, Emergency
from kubetrade.resources.riskpolicy import RiskPolicy
from kubetrade.resources.strategy import MAX_STRATEGY_NAME, Strategy
from kubetrade.resources.validationrun import ValidationRun

Schema = dict[str, Any]

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "nullable",
}


class SchemaError(ValueError):
    """A model uses a construct the translation does not know; fix the model or here."""


# -- JSON Schema (pydantic) -> structural OpenAPI v3 -----------------------------------


def _resolve(node: Schema, defs: Schema) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {k: v for k, v in target.items()}
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return _resolve(merged, defs)


def _number(value: Any) -> int | float:
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() else float(number)


def convert(node: Schema, defs: Schema) -> Schema:
    """One JSON Schema node as a structural schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        types = sorted(str(_resolve(b, defs).get("type")) for b in branches)
        if types == ["number", "string"]:  # Decimal: a JSON number in manifests
            branch = next(b for b in branches if b.get("type") == "number")
        elif len(branches) == 1:
            branch = branches[0]
        else:
            raise SchemaError(f"cannot express anyOf {types} structurally")
        merged = dict(_resolve(branch, defs))
        merged.update(outer)
        return convert(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = dict(_resolve(node["allOf"][0], defs))
        merged.update({k: v for k, v in node.items() if k != "allOf"})
        return convert(merged, defs)
    out: Schema = {}
    extensions = {k: v for k, v in node.items() if k.startswith("x-kubernetes-")}
    if "const" in node:
        out["type"] = "string" if isinstance(node["const"], str) else node.get("type")
        out["enum"] = [node["const"]]
    for key, value in node.items():
        if key not in _KEEP:
            continue
        out[key] = copy.deepcopy(value)
    kind = out.get("type")
    if kind is None and "enum" in out:
        out["type"] = "string"
        kind = "string"
    if kind is None:
        raise SchemaError(f"node without a type: {node}")
    if kind == "object":
        props = node.get("properties")
        additional = node.get("additionalProperties")
        out.pop("additionalProperties", None)
        if props:
            out["properties"] = {
                name: _property(name, sub, node, defs) for name, sub in props.items()
            }
        elif additional is True or (additional is None and not props):
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(additional, dict):
            out["additionalProperties"] = convert(additional, defs)
        if props and additional is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        items = dict(node.get("items", {}))
        out["items"] = convert(items, defs) if items else {"type": "string"}
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            # JSON Schema 2020 gives the bound; OpenAPI v3.0 a flag next to minimum/maximum.
            plain = "minimum" if bound == "exclusiveMinimum" else "maximum"
            out[plain] = _number(out[bound])
            out[bound] = True
    for bound in ("minimum", "maximum"):
        if bound in out:
            out[bound] = _number(out[bound])
    if "default" in out:
        if out["default"] is None:
            del out["default"]
        elif kind in ("number", "integer"):
            out["default"] = _number(out["default"])
    out.update(extensions)
    return out


def _property(name: str, sub: Schema, parent: Schema, defs: Schema) -> Schema:
    converted = convert(sub, defs)
    if "description" not in converted:
        raise SchemaError(f"field {name!r} needs a description (kubectl explain shows it)")
    required = set(parent.get("required", []))
    if (
        name not in required
        and "default" not in converted
        and converted.get("type") == "object"
        and "properties" in converted
        and not converted.get("required")
    ):
        # default_factory=SubModel: let the API server fill the sub-object's defaults too.
        converted["default"] = {}
    return converted


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True)
    defs = raw.get("$defs", {})
    return convert(raw, defs)


# -- Strategy.parameters: the union of every algorithm's parameters -----------------------


def _cel_literal(value: Any, kind: str) -> str:
    number = Decimal(str(value))
    if kind == "integer":
        return str(int(number))
    text = format(number.normalize(), "f")
    return text if "." in text else text + ".0"


def _param_schemas() -> dict[str, Schema]:
    return {name: model_schema(model) for name, model in sorted(algorithms().items())}


def parameters_schema() -> tuple[Schema, list[Schema]]:
    """The ``parameters`` property and the per-algorithm CEL rules at spec level."""
    per_algo = _param_schemas()
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
    for key, prop in union.items():
        parts = []
        for algo in users[key]:
            sub = per_algo[algo]["properties"][key]
            default = f" Default {sub['default']}." if "default" in sub else ""
            parts.append(f"{algo}: {sub['description']}{default}")
        prop["description"] = " ".join(parts)
    param_prop: Schema = {
        "type": "object",
        "description": "Parameters of the algorithm; absent ones take the algorithm's "
        "defaults. "
        + "; ".join(f"{algo}: {', '.join(s.get('properties', {}))}" for algo, s in per_algo.items())
        + ".",
        "default": {},
        "properties": union,
    }
    rules: list[Schema] = []
    for algo, schema in per_algo.items():
        props: dict[str, Schema] = schema.get("properties", {})
        guard = f"self.algorithm != '{algo}' || "
        foreign = sorted(set(union) - set(props))
        if foreign:
            rules.append(
                {
                    "rule": guard + " && ".join(f"!has(self.parameters.{k})" for k in foreign),
                    "message": f"spec.parameters: {algo} takes only {', '.join(props)}",
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
        for key, prop in props.items():
            kind = union[key]["type"]
            checks = []
            for plain, flag, op, strict_op in (
                ("minimum", "exclusiveMinimum", ">=", ">"),
                ("maximum", "exclusiveMaximum", "<=", "<"),
            ):
                if plain not in prop:
                    continue
                same = union[key].get(plain) == prop[plain] and bool(union[key].get(flag)) == bool(
                    prop.get(flag)
                )
                if same:
                    continue
                literal = _cel_literal(prop[plain], kind)
                checks.append(
                    (
                        f"self.parameters.{key} {strict_op if prop.get(flag) else op} {literal}",
                        f"{'>' if plain == 'minimum' else '<'}"
                        f"{'' if prop.get(flag) else '='} {literal}",
                    )
                )
            for expr, text in checks:
                rules.append(
                    {
                        "rule": guard + f"!has(self.parameters.{key}) || {expr}",
                        "message": f"spec.parameters.{key} must be {text} for {algo}",
                        "fieldPath": f".parameters.{key}",
                        "reason": "FieldValueInvalid",
                    }
                )
        for template, message in CROSS_RULES.get(algo, []):
            values = {}
            for key, prop in props.items():
                kind = union[key]["type"]
                if "default" in prop:
                    values[key] = (
                        f"(has(self.parameters.{key}) ? self.parameters.{key} : "
                        f"{_cel_literal(prop['default'], kind)})"
                    )
                else:
                    values[key] = f"self.parameters.{key}"
            rules.append(
                {
                    "rule": guard + template.format(**values),
                    "message": message,
                    "fieldPath": ".parameters",
                    "reason": "FieldValueInvalid",
                }
            )
    return param_prop, rules


# -- the kinds ----------------------------------------------------------------------------


def _strategy_schema() -> Schema:
    schema = model_schema(Strategy)
    spec = schema["properties"]["spec"]
    params, param_rules = parameters_schema()
    spec["properties"]["parameters"] = params
    spec["properties"]["symbols"]["x-kubernetes-list-type"] = "set"
    spec["x-kubernetes-validations"] = [
        {
            "rule": "self.mode != 'live' || has(self.exchange.credentialsSecret)",
            "message": "spec.exchange.credentialsSecret is required when spec.mode is live "
            "(the Secret with the exchange API keys)",
            "fieldPath": ".exchange",
            "reason": "FieldValueRequired",
        },
        *param_rules,
    ]
    schema["x-kubernetes-validations"] = [
        {
            "rule": f"self.metadata.name.size() <= {MAX_STRATEGY_NAME}",
            "message": f"metadata.name must be at most {MAX_STRATEGY_NAME} characters (it "
            "names the runner Deployment and its pods)",
        }
    ]
    return schema


def _riskpolicy_schema() -> Schema:
    schema = model_schema(RiskPolicy)
    spec = schema["properties"]["spec"]
    spec["properties"]["allowedSymbols"]["x-kubernetes-list-type"] = "set"
    return schema


def _emergency_schema() -> Schema:
    schema = model_schema(Emergency)
    schema["x-kubernetes-validations"] = [
        {
            "rule": f"self.metadata.name == '{EMERGENCY_NAME}'",
            "message": f"metadata.name must be '{EMERGENCY_NAME}': there is one Emergency "
            "per namespace",
        }
    ]
    return schema


def _validationrun_schema() -> Schema:
    schema = model_schema(ValidationRun)
    spec = schema["properties"]["spec"]
    spec["x-kubernetes-validations"] = [
        {
            "rule": "self == oldSelf",
            "message": "spec is immutable: create a new ValidationRun to validate again",
        }
    ]
    return schema


def _finish(schema: Schema, kind: str) -> Schema:
    """Root-level touches: metadata, the spec required, status open to other writers."""
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": "kubetrade.io/v1alpha1"}
    props["kind"] = {"type": "string", "description": kind}
    props["metadata"] = {"type": "object"}
    status = props.get("status")
    if status is not None:
        # kubetrade validate, the runner summary fold and kopf all write status; fields
        # not declared here are kept rather than silently pruned.
        status["x-kubernetes-preserve-unknown-fields"] = True
        status.pop("default", None)
    schema.pop("default", None)
    schema.pop("required", None)
    schema["required"] = ["spec"] if "spec" in props else []
    if not schema["required"]:
        del schema["required"]
    return schema


_CONDITIONS_NOTE = "Conditions: Ready plus kind-specific ones."

KINDS: list[dict[str, Any]] = [
    {
        "kind": "Strategy",
        "plural": "strategies",
        "short": ["strat", "strats"],
        "schema": _strategy_schema,
        "columns": [
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "P&L", "type": "string", "jsonPath": ".status.pnl"},
            {"name": "Trades", "type": "integer", "jsonPath": ".status.trades"},
            {"name": "Win Rate", "type": "string", "jsonPath": ".status.winRate"},
            {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm", "priority": 1},
            {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
    {
        "kind": "RiskPolicy",
        "plural": "riskpolicies",
        "short": ["rp"],
        "schema": _riskpolicy_schema,
        "columns": [
            {"name": "Stop-Loss %", "type": "number", "jsonPath": ".spec.stopLossPct"},
            {"name": "Daily Loss %", "type": "number", "jsonPath": ".spec.dailyLossLimitPct"},
            {"name": "Max DD %", "type": "number", "jsonPath": ".spec.maxDrawdownPct"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
    {
        "kind": "Emergency",
        "plural": "emergencies",
        "short": ["emerg"],
        "schema": _emergency_schema,
        "columns": [
            {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Acked", "type": "integer", "jsonPath": ".status.acknowledged"},
            {"name": "Runners", "type": "integer", "jsonPath": ".status.runners"},
            {"name": "Since", "type": "date", "jsonPath": ".status.since"},
            {"name": "By", "type": "string", "jsonPath": ".status.by", "priority": 1},
        ],
    },
    {
        "kind": "ValidationRun",
        "plural": "validationruns",
        "short": ["vrun", "vr"],
        "schema": _validationrun_schema,
        "columns": [
            {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategyRef"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
]


def crd(entry: dict[str, Any]) -> Schema:
    kind: str = entry["kind"]
    plural: str = entry["plural"]
    schema = _finish(entry["schema"](), kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubetrade"},
            "annotations": {
                "kubetrade.io/generated-by": "python -m kubetrade.resources.crdgen (make crds)"
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": entry["short"],
                "categories": ["kubetrade"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": entry["columns"],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    out: dict[str, str] = {}
    for entry in KINDS:
        doc = crd(entry)
        text = yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
        out[f"{entry['plural']}.{GROUP}.yaml"] = (
            "# Generated by `make crds` from kubetrade/resources; do not edit.\n" + text
        )
    return out


def targets(outdir: Path) -> list[Path]:
    """The output directory, plus the Helm chart's crds/ when the chart sits next to it."""
    dirs = [outdir]
    chart = outdir.resolve().parent / "charts" / "kubetrade"
    if outdir.name == "crds" and chart.is_dir():
        dirs.append(chart / "crds")
    return dirs


def write(outdir: Path) -> list[Path]:
    written: list[Path] = []
    files = render()
    for target in targets(outdir):
        target.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = target / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path, help="directory for the CRD YAML files")
    parser.add_argument(
        "--check", action="store_true", help="only report whether the files are up to date"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = [
            str(d / name)
            for d in targets(args.outdir)
            for name, text in render().items()
            if not (d / name).is_file() or (d / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"out of date: {name} (run `make crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
