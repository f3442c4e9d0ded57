"""Pieces every kind shares: object metadata, conditions and the base model config.

The models accept both the CR spelling (camelCase, as users type it in YAML) and the
Python spelling, and dump with aliases so a model round-trips into a manifest that
``kubectl apply`` takes unchanged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

GROUP = "kubetrade.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: DNS-1123 label: what Kubernetes accepts as a name that also ends up in labels.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: What the API server accepts as an object name.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def as_number(value: Decimal) -> int | float:
    """Decimals go into manifests as JSON numbers (the CRDs type them ``number``)."""
    return int(value) if value == value.to_integral_value() else float(value)


#: A Decimal that serialises to a JSON number (exact in Python, a number in YAML/JSON).
Num = Annotated[Decimal, PlainSerializer(as_number, return_type=int | float, when_used="json")]

#: A status time, RFC 3339 (the CRD says ``format: date-time``).
Timestamp = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class CRModel(BaseModel):
    """Base of every spec/status model: camelCase aliases, unknown fields refused.

    Refusing unknown fields matters: a misspelt ``stopLosPct`` silently ignored would
    leave a live strategy without the stop-loss its author believes it has.
    """

    model_config = ConfigDict(
        alias_generator=_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    def to_manifest_dict(self) -> dict[str, Any]:
        """JSON-able dict with CR field names, omitting unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The part of Kubernetes ObjectMeta kubetrade reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Object name (a DNS-1123 subdomain, as the API server accepts; names "
        "derived from it are made valid labels by the operator).",
    )
    namespace: str | None = Field(default=None, description="Namespace of the object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    uid: str | None = Field(default=None, description="Set by the API server.")
    generation: int | None = Field(default=None, description="Set by the API server.")
    resource_version: str | None = Field(
        default=None, alias="resourceVersion", description="Set by the API server."
    )


class Condition(CRModel):
    """One observation about the object, in the shape `kubectl wait --for=condition=` reads."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Kind of condition, e.g. Ready, Deployed, RiskPolicyValid, PreflightPassed.",
    )
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str = Field(
        default="",
        max_length=1024,
        description="One CamelCase word a program can switch on, e.g. DeploymentReady.",
    )
    message: str = Field(
        default="", max_length=32768, description="What a human should know, naming the field."
    )
    last_transition_time: Timestamp = Field(
        default=None,
        description="When the status of this condition last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the spec this condition was computed from.",
    )


class CRStatus(CRModel):
    """Status fields every kind has."""

    model_config = ConfigDict(extra="allow")

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation the operator last reconciled.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current observations (Ready, and kind-specific ones).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class Resource(BaseModel):
    """A full manifest: apiVersion, kind, metadata, spec, status."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    api_version: Literal["kubetrade.io/v1alpha1"] = Field(
        default="kubetrade.io/v1alpha1", alias="apiVersion", description="kubetrade.io/v1alpha1"
    )
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as ``kubectl apply`` takes it (CR field names, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
