"""The Emergency kind: the namespace's kill switch, one object named ``default``."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from kubetrade.domain.emergency import EMERGENCY_ACTIONS, EmergencyAction
from kubetrade.resources.common import CRModel, CRStatus, Resource, Timestamp

EMERGENCY_NAME = "default"

#: The domain's EmergencyAction, its values inlined in the schema (no ``$ref``).
Action = Annotated[
    EmergencyAction, WithJsonSchema({"enum": list(EMERGENCY_ACTIONS), "type": "string"})
]


class EmergencySpec(CRModel):
    """``stop`` halts every runner and cancels open orders; ``close-all`` also sells every
    position at market; ``none`` lets them trade again."""

    model_config = ConfigDict(use_enum_values=True)

    action: Action = Field(
        default=EmergencyAction.NONE,
        description="none (trade), stop (halt, cancel orders) or close-all.",
    )
    reason: str = Field(default="", max_length=1024, description="Why; shown in alerts.")
    requested_by: str = Field(
        default="", max_length=253, description="Who asked (user, API, Telegram chat)."
    )


class EmergencyStatus(CRStatus):
    """What the operator mirrored and how many runners acknowledged it."""

    model_config = ConfigDict(use_enum_values=True)

    state: Action | None = Field(
        default=None, description="The action in force (as mirrored to Redis)."
    )
    since: Timestamp = Field(
        default=None, description="When the action in force was first seen (RFC 3339)."
    )
    by: str | None = Field(default=None, description="Who requested the action in force.")
    acknowledged: int | None = Field(
        default=None, ge=0, description="Runners that acknowledged the action in force."
    )
    runners: int | None = Field(
        default=None,
        ge=0,
        description="Runners expected to acknowledge: Strategies whose runner Deployment "
        "has replicas > 0 (one held at 0 replicas cannot ack).",
    )
    waiting_for: list[str] | None = Field(
        default=None,
        description="The Strategies whose runner has not yet acknowledged this change "
        "(this generation of the Emergency, or this Redis-only stop).",
    )


class Emergency(Resource):
    """The kill switch. There is one per namespace and it is named ``default``."""

    kind: Literal["Emergency"] = Field(default="Emergency", description="Emergency")
    spec: EmergencySpec = Field(default_factory=EmergencySpec)
    status: EmergencyStatus | None = None

    @model_validator(mode="after")
    def _named_default(self) -> Self:
        if self.metadata.name != EMERGENCY_NAME:
            raise ValueError(
                f"metadata.name must be {EMERGENCY_NAME!r}: there is one Emergency per namespace"
            )
        return self
