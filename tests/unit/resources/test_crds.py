"""The committed CRDs are what the models generate, and carry what users rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade.resources import crdgen
from kubetrade.resources.chart_schema import draft7

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("where", ["crds", "charts/kubetrade/crds"])
def test_committed_crds_match_the_models(where: str) -> None:
    rendered = crdgen.render()
    for name, text in rendered.items():
        path = ROOT / where / name
        assert path.is_file(), f"{path} missing: run `make crds`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make crds`"
    extra = {p.name for p in (ROOT / where).glob("*.yaml")} - set(rendered)
    assert not extra, f"{where} has files crdgen does not produce: {extra}"


def test_the_charts_values_schema_is_what_make_crds_writes() -> None:
    """values.schema.json checks the chart's default RiskPolicy with the CRD's rules."""
    for path, text in crdgen.generated(ROOT / "crds").items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make crds`"
    schema = json.loads((ROOT / "charts/kubetrade/values.schema.json").read_text())
    spec = schema["properties"]["defaults"]["properties"]["riskPolicy"]["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["stopLossPct"] | {"description": ""} == {
        "minimum": 0, "exclusiveMaximum": 100, "type": "number", "default": 5,
        "description": ""}
    assert spec["properties"]["maxPositionSizePct"]["exclusiveMinimum"] == 0


def test_openapi_bounds_become_draft7_bounds() -> None:
    assert draft7({"type": "object", "properties": {
        "a": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 9,
              "exclusiveMaximum": False},
        "b": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
    }}) == {"type": "object", "additionalProperties": False, "properties": {
        "a": {"type": "number", "exclusiveMinimum": 0, "maximum": 9},
        "b": {"type": "array", "items": {"type": "string"}},
    }}


def _crds() -> dict[str, dict[str, Any]]:
    return {
        doc["spec"]["names"]["kind"]: doc
        for doc in (yaml.safe_load(t) for t in crdgen.render().values())
    }


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Paths of properties without a description (kubectl explain would show nothing)."""
    missing = []
    for name, prop in node.get("properties", {}).items():
        here = f"{path}.{name}"
        if name != "metadata" and not prop.get("description"):
            missing.append(here)
        missing += _walk(prop, here)
        if "items" in prop:
            missing += _walk(prop["items"], here + "[]")
    return missing


def test_every_field_has_a_description() -> None:
    for kind, crd in _crds().items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema, kind) == []


def test_status_subresource_conditions_and_observed_generation() -> None:
    for crd in _crds().values():
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert "observedGeneration" in status["properties"]
        cond = status["properties"]["conditions"]["items"]["properties"]
        assert {
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
            "observedGeneration",
        } <= set(cond)
        assert crd["spec"]["names"]["categories"] == ["kubetrade"]
        assert crd["spec"]["names"]["shortNames"]


def test_printer_columns() -> None:
    crds = _crds()
    columns = [
        c["name"]
        for c in crds["Strategy"]["spec"]["versions"][0]["additionalPrinterColumns"]
        if c.get("priority", 0) == 0
    ]
    assert columns == ["Mode", "Phase", "P&L", "Trades", "Win Rate", "Age"]
    vr = [
        c["name"] for c in crds["ValidationRun"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert "Decision" in vr


def test_schema_is_structural() -> None:
    """No $ref/anyOf/allOf and a type on every node: what the API server demands."""

    def check(node: dict[str, Any], path: str) -> None:
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "$defs", "title"):
            assert banned not in node, f"{path} has {banned}"
        if path.endswith("metadata"):
            return
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        for name, prop in node.get("properties", {}).items():
            check(prop, f"{path}.{name}")
        if "items" in node:
            check(node["items"], f"{path}[]")

    for kind, crd in _crds().items():
        check(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind)
