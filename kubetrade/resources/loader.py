"""Reading manifests from YAML files, for the commands that run without a cluster.

``kubetrade local`` and ``kubetrade validate --strategy-file`` read the same files
``kubectl apply -f`` takes, so a mistake must be reported with the file, the document
and the field, the way the API server would report it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubetrade.resources.common import API_VERSION
from kubetrade.resources.emergency import Emergency
from kubetrade.resources.riskpolicy import RiskPolicy
from kubetrade.resources.strategy import Strategy
from kubetrade.resources.validationrun import ValidationRun

AnyResource = Strategy | RiskPolicy | Emergency | ValidationRun

KINDS: dict[str, type[AnyResource]] = {
    "Strategy": Strategy,
    "RiskPolicy": RiskPolicy,
    "Emergency": Emergency,
    "ValidationRun": ValidationRun,
}


class ManifestError(ValueError):
    """A manifest that is not a valid kubetrade resource; the message names file and field."""


def _format(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_manifest(doc: dict[str, Any], source: str = "<manifest>") -> AnyResource:
    """Validate one manifest dict into its model."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: a manifest must be a mapping, got {type(doc).__name__}")
    kind = doc.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError(f"{source}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise ManifestError(f"{source}: apiVersion {doc.get('apiVersion')!r} must be {API_VERSION}")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        name = (doc.get("metadata") or {}).get("name", "?")
        raise ManifestError(f"{source}: {kind} {name}: {_format(exc)}") from None


def strategy_with_defaults(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Strategy manifest checked by the resource model, with its defaults filled in
    (camelCase JSON form, unset optional fields left out). Raises
    ``pydantic.ValidationError``. ``kubetrade local`` gives it to ``LocalDesiredState``
    as the check of what it stores."""
    model = Strategy.model_validate(manifest)
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def load_manifests(path: str | Path) -> list[AnyResource]:
    """Every kubetrade resource in a YAML file or in the *.yaml/*.yml files of a directory
    (multi-document files allowed, empty documents skipped)."""
    resources: list[AnyResource] = []
    for file in _files(Path(path)):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{file}: not valid YAML: {exc}") from None
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            resources.append(parse_manifest(doc, f"{file} (document {index + 1})"))
    return resources


def load_strategy_file(path: str | Path) -> Strategy:
    """The one Strategy in a file (other kinds in the file, e.g. its RiskPolicy, are allowed)."""
    strategies = [r for r in load_manifests(path) if isinstance(r, Strategy)]
    if len(strategies) != 1:
        raise ManifestError(f"{path}: expected exactly one Strategy, found {len(strategies)}")
    return strategies[0]
