"""Reading manifests from YAML files, for the commands that run without a cluster.

``kubetrade local`` and ``kubetrade validate --strategy-file`` read the same files
``kubectl apply -f`` takes, so a mistake must be reported with the file, the document
and the field, the way the API server would report it.
"""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

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


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def known_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names, as a manifest spells them, of the object at ``loc`` (list
    indexes skipped) inside ``model``; empty when that is not a model (a map)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items()
                      if part in (n, f.alias)), None)
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _message(err: ErrorDetails, model: type[BaseModel] | None) -> str:
    """One pydantic error as ``field: rule``; an unknown field says which known one it
    is probably a misspelling of."""
    loc = ".".join(str(p) for p in err["loc"])
    msg: str = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and err["loc"]:
        msg = "unknown field"
        if model is not None:
            near = get_close_matches(str(err["loc"][-1]),
                                     known_fields(model, tuple(err["loc"][:-1])), n=1)
            if near:
                msg += f" (did you mean {near[0]!r}?)"
    if not loc or msg.startswith((f"{loc}.", f"{loc}:")):  # a model check naming its field
        return msg
    return f"{loc}: {msg}"


def _format(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """The errors of ``exc`` (raised validating ``model``), unknown fields first: a
    misspelt field also makes the one it meant missing, and the typo is the cause."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return "; ".join(_message(err, model) for err in errors)


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
        raise ManifestError(f"{source}: {kind} {name}: {_format(exc, model)}") from None


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


def _where(file: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column`` of a YAML error (``file`` when it has no position)."""
    mark = getattr(exc, "problem_mark", None)
    return f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what was wrong, and while reading what (PyYAML's own
    text spans several lines and names the input ``<unicode string>``)."""
    problem = getattr(exc, "problem", None)
    if problem is None:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"{problem} ({context})" if context else str(problem)


def load_manifests(path: str | Path) -> list[AnyResource]:
    """Every kubetrade resource in a YAML file or in the *.yaml/*.yml files of a directory
    (multi-document files allowed, empty documents skipped)."""
    resources: list[AnyResource] = []
    for file in _files(Path(path)):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{_where(file, exc)}: not valid YAML: {_yaml_problem(exc)}"
                                ) from None
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
