"""``GET|PUT /api/settings``: the risk limits in force (the RiskPolicy named by
``RISK_POLICY``) and the process configuration with secrets masked."""

from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from kubetrade.api import schemas as s
from kubetrade.api.deps import Desired, Settings, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD
from kubetrade.api.settings import ApiSettings
from kubetrade.state.desired import DesiredState, DesiredStateError

router = APIRouter(tags=["settings"], responses={**AUTH_RESPONSES, **BAD})


def normalise_risk_patch(patch: BaseModel) -> dict[str, Any]:
    """The set fields in CR spelling (camelCase), Decimals as JSON numbers as the CRD
    types them. Raises :class:`DesiredStateError` (422) when no field is set."""
    out: dict[str, Any] = {}
    for key, value in patch.model_dump(by_alias=True, exclude_unset=True).items():
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        out[key] = value
    if not out:
        raise DesiredStateError("risk: at least one setting to change is required")
    return out


def trading_mode(strategies: list[dict[str, Any]]) -> str:
    """What the strategies trade: ``paper`` or ``live`` when all agree, ``mixed``, or
    ``none`` without strategies (spec.mode decides; the TRADING_MODE variable does not)."""
    modes = {(m.get("spec") or {}).get("mode", "paper") for m in strategies}
    return "none" if not modes else modes.pop() if len(modes) == 1 else "mixed"


async def _settings_out(desired: DesiredState, settings: ApiSettings) -> s.SettingsOut:
    manifest = await desired.get_risk_policy(settings.risk_policy)
    runtime = {"tradingMode": trading_mode(await desired.list_strategies()),
               **settings.masked_runtime()}
    return s.SettingsOut(
        risk_policy=settings.risk_policy,
        risk=dict(manifest.get("spec") or {}),
        runtime=runtime,
    )


@router.get(
    "/api/settings",
    response_model=s.SettingsOut,
)
async def get_settings(user: User, desired: Desired, settings: Settings) -> s.SettingsOut:
    """The risk limits in force and the process configuration (secrets masked)."""
    return await _settings_out(desired, settings)


@router.put(
    "/api/settings",
    response_model=s.SettingsOut,
)
async def put_settings(
    user: User, desired: Desired, settings: Settings, body: s.SettingsIn
) -> s.SettingsOut:
    """Change risk limits; validated with the engine's RiskLimits and written to the
    RiskPolicy, which running strategies apply without restarting."""
    patch = normalise_risk_patch(body.risk)
    await desired.update_risk_policy(settings.risk_policy, patch, user.actor)
    return await _settings_out(desired, settings)
