"""``/api/strategies``: the configured strategies with their live stats, and the
enable/disable toggle (written to the desired state, audited with the caller)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi import Path as PathParam

from kubetrade.api import schemas as s
from kubetrade.api.deps import ClockDep, Desired, Reader, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD, NAME_PATTERN
from kubetrade.api.views import strategy_stats

router = APIRouter()


def _strategy_out(
    name: str, manifest: dict[str, Any] | None, summary: dict[str, str] | None, now_ms: int
) -> s.StrategyOut:
    """One row: ``manifest`` is None for a strategy with state but no Strategy."""
    spec = (manifest or {}).get("spec") or {}
    return s.StrategyOut(
        name=name,
        configured=manifest is not None,
        enabled=bool(spec.get("enabled", True)) if manifest is not None else None,
        algorithm=spec.get("algorithm"),
        mode=spec.get("mode"),
        symbols=list(spec.get("symbols") or []),
        timeframe=spec.get("timeframe"),
        parameters=dict(spec.get("parameters") or {}),
        risk_policy_ref=spec.get("riskPolicyRef"),
        stats=strategy_stats(summary, now_ms),
    )


@router.get(
    "/api/strategies",
    response_model=list[s.StrategyOut],
    tags=["strategies"],
    responses={**AUTH_RESPONSES, **BAD},
)
async def strategies(user: User, desired: Desired, reader: Reader,
                     clock: ClockDep) -> list[s.StrategyOut]:
    """Every configured strategy with its live stats (and any with state but no
    Strategy any more)."""
    manifests = {
        (m.get("metadata") or {}).get("name", ""): m for m in await desired.list_strategies()
    }
    manifests.pop("", None)
    state_names = await reader.strategy_names()
    names = sorted(set(manifests) | set(state_names))
    summaries = await reader.summaries(names)
    now = clock.now_ms()
    return [_strategy_out(n, manifests.get(n), summaries.get(n), now) for n in names]


@router.post(
    "/api/strategies/{name}/toggle",
    response_model=s.ToggleOut,
    tags=["strategies"],
    responses={
        **AUTH_RESPONSES,
        404: {"model": s.ErrorOut, "description": "No such strategy."},
        **BAD,
    },
)
async def toggle(
    user: User,
    desired: Desired,
    name: Annotated[str, PathParam(pattern=NAME_PATTERN, max_length=253)],
    body: Annotated[s.ToggleIn | None, Body()] = None,
) -> s.ToggleOut:
    """Enable or disable a strategy (flip when no body). A disabled strategy's runner
    stops opening positions; the change is audited with the caller."""
    manifest = await desired.get_strategy(name)
    current = bool((manifest.get("spec") or {}).get("enabled", True))
    target = body.enabled if body is not None and body.enabled is not None else not current
    updated = await desired.set_strategy_enabled(name, target, user.actor)
    return s.ToggleOut(name=name, enabled=bool((updated.get("spec") or {}).get("enabled", target)))
