"""``/api/emergency`` and its ``stop``, ``close-all`` and ``resume``: the kill switch.

Every change goes to the Emergency resource through the desired state (audited with
the caller). A halt (stop, close-all) must work while Redis is down or hangs: its
caller is authenticated without the revocation check, and runner acknowledgements,
unreadable then, are left out of the answer; the runners see the resource on their
own. Each wait on Redis is bounded by ``REDIS_WAIT_S``.
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body

from kubetrade.api import schemas as s
from kubetrade.api.auth import Principal
from kubetrade.api.deps import Desired, KillSwitchUser, Reader, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD
from kubetrade.api.views import emergency_out
from kubetrade.domain.emergency import REDIS_WAIT_S, EmergencyAction
from kubetrade.state.client import RedisError
from kubetrade.state.desired import DesiredState
from kubetrade.state.reader import StateReader

router = APIRouter()

Reason = Annotated[s.EmergencyIn | None, Body()]
_ROUTE: dict[str, Any] = {
    "response_model": s.EmergencyOut,
    "tags": ["emergency"],
    "responses": {**AUTH_RESPONSES, **BAD},
}


async def _emergency_out(
    desired: DesiredState, reader: StateReader, tolerate_redis_down: bool = False
) -> s.EmergencyOut:
    state = await desired.get_emergency()
    try:
        async with asyncio.timeout(REDIS_WAIT_S if tolerate_redis_down else None):
            acks = await reader.emergency_acks()
    except (RedisError, TimeoutError):
        if not tolerate_redis_down:
            raise
        # the stop went through the Emergency resource (or the runners' memory); acks
        # come later
        return emergency_out(state, {}).model_copy(update={
            "note": "runner acknowledgements unreadable now: Redis is unavailable"})
    return emergency_out(state, acks)


async def _set(
    desired: DesiredState,
    reader: StateReader,
    user: Principal,
    path: str,
    action: EmergencyAction,
    body: s.EmergencyIn | None,
) -> s.EmergencyOut:
    """Write ``action`` with the caller's reason (or ``<path> via API``); a halt
    answers even when Redis is down."""
    reason = body.reason if body is not None else ""
    state = await desired.set_emergency(action.value, user.actor, reason or f"{path} via API")
    out = await _emergency_out(desired, reader, tolerate_redis_down=action.halts)
    if state.get("note"):
        out = out.model_copy(update={"note": str(state["note"])})
    return out


@router.get("/api/emergency", **_ROUTE)
async def get_emergency(
    user: KillSwitchUser, desired: Desired, reader: Reader
) -> s.EmergencyOut:
    """The emergency action in force and each runner's acknowledgement; like a stop, it
    answers while Redis is down or hangs (the acknowledgements are then left out, and
    ``note`` says so)."""
    return await _emergency_out(desired, reader, tolerate_redis_down=True)


@router.post("/api/emergency/stop", name="emergency_stop", **_ROUTE)
async def emergency_stop(
    user: KillSwitchUser, desired: Desired, reader: Reader, body: Reason = None
) -> s.EmergencyOut:
    """Halt every runner and cancel open orders; positions stay."""
    return await _set(desired, reader, user, "stop", EmergencyAction.STOP, body)


@router.post("/api/emergency/close-all", name="emergency_close_all", **_ROUTE)
async def emergency_close_all(
    user: KillSwitchUser, desired: Desired, reader: Reader, body: Reason = None
) -> s.EmergencyOut:
    """Halt every runner and sell every position at market."""
    return await _set(desired, reader, user, "close-all", EmergencyAction.CLOSE_ALL, body)


@router.post("/api/emergency/resume", name="emergency_resume", **_ROUTE)
async def emergency_resume(
    user: User, desired: Desired, reader: Reader, body: Reason = None
) -> s.EmergencyOut:
    """Let runners trade again after an emergency."""
    return await _set(desired, reader, user, "resume", EmergencyAction.NONE, body)
