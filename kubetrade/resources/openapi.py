"""pydantic's JSON Schema -> the structural OpenAPI v3 subset the API server accepts.

The models are the one statement of fields, descriptions and bounds; this module only
translates: ``$ref``/``anyOf``/``allOf`` are inlined, Decimals (number or string in
JSON Schema) become numbers, JSON Schema 2020 exclusive bounds become OpenAPI v3.0
flags, and objects without declared properties keep unknown fields. Key order of the
output is part of the generated files (``make crds``), so it is kept as built here.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

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
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "nullable",
}


class SchemaError(ValueError):
    """A model uses a construct the translation does not know; fix the model or here."""


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


def _flatten(node: Schema, defs: Schema) -> Schema | None:
    """The one branch an ``anyOf`` (optional, or a Decimal) or a one-item ``allOf``
    stands for, merged with the node's own keys; None when the node has neither."""
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
        return merged
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = dict(_resolve(node["allOf"][0], defs))
        merged.update({k: v for k, v in node.items() if k != "allOf"})
        return merged
    return None


def _kept(node: Schema) -> Schema:
    """The keys OpenAPI keeps, with a ``const`` as a one-value enum and a type."""
    out: Schema = {}
    if "const" in node:
        out["type"] = "string" if isinstance(node["const"], str) else node.get("type")
        out["enum"] = [node["const"]]
    for key, value in node.items():
        if key not in _KEEP:
            continue
        out[key] = copy.deepcopy(value)
    if out.get("type") is None and "enum" in out:
        out["type"] = "string"
    if out.get("type") is None:
        raise SchemaError(f"node without a type: {node}")
    return out


def _object(out: Schema, node: Schema, defs: Schema) -> None:
    """Properties converted; open objects keep unknown fields (structural rule)."""
    props = node.get("properties")
    additional = node.get("additionalProperties")
    out.pop("additionalProperties", None)
    if props:
        out["properties"] = {name: _property(name, sub, node, defs) for name, sub in props.items()}
    elif additional is True or (additional is None and not props):
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(additional, dict):
        out["additionalProperties"] = convert(additional, defs)
    if props and additional is True:
        out["x-kubernetes-preserve-unknown-fields"] = True


def _bounds_and_default(out: Schema, kind: str) -> None:
    """Exclusive bounds as OpenAPI v3.0 flags, numbers as JSON numbers, no null default."""
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


def convert(node: Schema, defs: Schema) -> Schema:
    """One JSON Schema node as a structural schema node.

    Raises ``SchemaError`` for what the structural subset cannot say (a union of
    several types, a node without a type, a property without a description).
    """
    node = _resolve(node, defs)
    merged = _flatten(node, defs)
    if merged is not None:
        return convert(merged, defs)
    extensions = {k: v for k, v in node.items() if k.startswith("x-kubernetes-")}
    out = _kept(node)
    kind = out["type"]
    if kind == "object":
        _object(out, node, defs)
    elif kind == "array":
        items = dict(node.get("items", {}))
        out["items"] = convert(items, defs) if items else {"type": "string"}
    _bounds_and_default(out, kind)
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
    """The structural schema of a pydantic model (CR field names)."""
    raw = model.model_json_schema(by_alias=True)
    defs = raw.get("$defs", {})
    return convert(raw, defs)


__all__ = ["Schema", "SchemaError", "convert", "model_schema"]
