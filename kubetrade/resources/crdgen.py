"""Generate the CustomResourceDefinitions from the pydantic models.

``python -m kubetrade.resources.crdgen crds`` (``make crds``) writes
``crds/<plural>.kubetrade.io.yaml``; when a ``charts/kubetrade`` directory sits next
to the output directory, the same files go to ``charts/kubetrade/crds/`` so Helm
installs exactly what the tests apply. A unit test fails when the committed files
drift from the models.

The models are the one statement of fields, descriptions and bounds; ``openapi.py``
translates pydantic's JSON Schema into the structural OpenAPI v3 subset the API server
accepts, ``crdparams.py`` builds the union of the algorithms' parameters, and this
module adds what JSON Schema cannot say: CEL rules that relate two fields, printer
columns, short names and the status subresource.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubetrade.resources.chart_schema import render_values_schema
from kubetrade.resources.common import GROUP, VERSION
from kubetrade.resources.crdparams import parameters_schema
from kubetrade.resources.emergency import EMERGENCY_NAME, Emergency
from kubetrade.resources.openapi import Schema, SchemaError, convert, model_schema
from kubetrade.resources.riskpolicy import RiskPolicy
from kubetrade.resources.strategy import MAX_STRATEGY_NAME, ONE_QUOTE_MESSAGE, Strategy
from kubetrade.resources.validationrun import ValidationRun
from kubetrade.resources.validationrun_sweep import SPEC_RULES as VALIDATION_RUN_RULES

# -- the kinds ----------------------------------------------------------------------------

Rule = dict[str, str]
"""One CEL rule of ``x-kubernetes-validations``: rule, message, optional fieldPath/reason."""


@dataclass(frozen=True)
class Kind:
    """One custom resource: its model and what JSON Schema cannot say about it.

    ``set_lists`` are spec properties whose lists are sets; ``spec_rules`` and ``rules``
    are the CEL rules on the spec and on the whole object (the metadata); ``extend``
    completes the spec schema in place and returns more spec rules (the Strategy's
    algorithm parameters, known only when the algorithms are loaded).
    """

    kind: str
    plural: str
    short: list[str]
    model: type[BaseModel]
    columns: list[dict[str, Any]]
    set_lists: tuple[str, ...] = ()
    spec_rules: tuple[Rule, ...] = ()
    rules: tuple[Rule, ...] = ()
    extend: Callable[[Schema], list[Rule]] | None = None

    def schema(self) -> Schema:
        """The model's structural schema with the list types and CEL rules added."""
        schema = model_schema(self.model)
        spec = schema["properties"].get("spec", {})
        spec_rules = list(self.spec_rules)
        if self.extend is not None:
            spec_rules += self.extend(spec)
        for name in self.set_lists:
            spec["properties"][name]["x-kubernetes-list-type"] = "set"
        if spec_rules:
            spec["x-kubernetes-validations"] = spec_rules
        if self.rules:
            schema["x-kubernetes-validations"] = list(self.rules)
        return schema


def _strategy_parameters(spec: Schema) -> list[Rule]:
    """The union of the algorithms' parameters, and their per-algorithm rules."""
    params, param_rules = parameters_schema()
    spec["properties"]["parameters"] = params
    return list(param_rules)


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

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
"""The printer column kubectl shows last for most kinds."""

KINDS: list[Kind] = [
    Kind(
        kind="Strategy",
        plural="strategies",
        short=["strat", "strats"],
        model=Strategy,
        columns=[
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "P&L", "type": "string", "jsonPath": ".status.pnl"},
            {"name": "Trades", "type": "integer", "jsonPath": ".status.trades"},
            {"name": "Win Rate", "type": "string", "jsonPath": ".status.winRate"},
            {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm", "priority": 1},
            {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled", "priority": 1},
            {"name": "Divergence", "type": "string", "jsonPath": ".status.twinDivergence",
             "priority": 1},
            {"name": "Size", "type": "string", "jsonPath": ".status.sizeStep", "priority": 1},
            _AGE,
        ],
        set_lists=("symbols",),
        spec_rules=(
            {
                "rule": "self.mode != 'live' || has(self.exchange.credentialsSecret)",
                "message": "spec.exchange.credentialsSecret is required when spec.mode is "
                "live (the Secret with the exchange API keys)",
                "fieldPath": ".exchange",
                "reason": "FieldValueRequired",
            },
            {
                "rule": "self.symbols.all(s, s.endsWith("
                "self.symbols[0].substring(self.symbols[0].indexOf('/'))))",
                "message": ONE_QUOTE_MESSAGE,
                "fieldPath": ".symbols",
                "reason": "FieldValueInvalid",
            },
        ),
        rules=(
            {
                "rule": f"self.metadata.name.size() <= {MAX_STRATEGY_NAME}",
                "message": f"metadata.name must be at most {MAX_STRATEGY_NAME} characters "
                "(it names the runner Deployment and its pods)",
            },
        ),
        extend=_strategy_parameters,
    ),
    Kind(
        kind="RiskPolicy",
        plural="riskpolicies",
        short=["rp"],
        model=RiskPolicy,
        columns=[
            {"name": "Stop-Loss %", "type": "number", "jsonPath": ".spec.stopLossPct"},
            {"name": "Daily Loss %", "type": "number", "jsonPath": ".spec.dailyLossLimitPct"},
            {"name": "Max DD %", "type": "number", "jsonPath": ".spec.maxDrawdownPct"},
            _AGE,
        ],
        set_lists=("allowedSymbols",),
    ),
    Kind(
        kind="Emergency",
        plural="emergencies",
        short=["emerg"],
        model=Emergency,
        columns=[
            {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Acked", "type": "integer", "jsonPath": ".status.acknowledged"},
            {"name": "Runners", "type": "integer", "jsonPath": ".status.runners"},
            {"name": "Since", "type": "date", "jsonPath": ".status.since"},
            {"name": "By", "type": "string", "jsonPath": ".status.by", "priority": 1},
        ],
        rules=(
            {
                "rule": f"self.metadata.name == '{EMERGENCY_NAME}'",
                "message": f"metadata.name must be '{EMERGENCY_NAME}': there is one Emergency "
                "per namespace",
            },
        ),
    ),
    Kind(
        kind="ValidationRun",
        plural="validationruns",
        short=["vrun", "vr"],
        model=ValidationRun,
        columns=[
            {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategyRef"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            _AGE,
        ],
        spec_rules=(
            {
                "rule": "self == oldSelf",
                "message": "spec is immutable: create a new ValidationRun to validate again",
            },
            *VALIDATION_RUN_RULES,
        ),
    ),
]


def crd(entry: Kind) -> Schema:
    """The CustomResourceDefinition document of one kind."""
    kind, plural = entry.kind, entry.plural
    schema = _finish(entry.schema(), kind)
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
                "shortNames": entry.short,
                "categories": ["kubetrade"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": entry.columns,
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
        out[f"{entry.plural}.{GROUP}.yaml"] = (
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


def generated(outdir: Path) -> dict[Path, str]:
    """Every file ``make crds`` writes, with its text: the CRDs in each of
    :func:`targets`, and with the chart, its values.schema.json, whose default
    RiskPolicy spec gets the CRD's rules (:mod:`kubetrade.resources.chart_schema`)."""
    files = render()
    out = {target / name: text for target in targets(outdir) for name, text in files.items()}
    for target in targets(outdir)[1:]:  # the chart's crds/
        values = target.parent / "values.schema.json"
        riskpolicy = next(k for k in KINDS if k.kind == "RiskPolicy")
        out[values] = render_values_schema(values, crd(riskpolicy))
    return out


def write(outdir: Path) -> list[Path]:
    written: list[Path] = []
    for path, text in generated(outdir).items():
        path.parent.mkdir(parents=True, exist_ok=True)
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
            str(path)
            for path, text in generated(args.outdir).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"out of date: {name} (run `make crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.outdir):
        print(path)
    return 0


__all__ = [
    "KINDS",
    "Kind",
    "Schema",
    "SchemaError",
    "convert",
    "crd",
    "generated",
    "main",
    "model_schema",
    "parameters_schema",
    "render",
    "targets",
    "write",
]


if __name__ == "__main__":
    raise SystemExit(main())
