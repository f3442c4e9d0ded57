"""Operations: ``/health``, ``/metrics``, ``/api/audit``, ``/api/preflight``,
``/api/reconciliation`` and the dashboard page ``/``."""

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubetrade.api import schemas as s
from kubetrade.api.deps import Ctx, Reader, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD, MAX_TS, STREAM_PATTERN, check_cursor
from kubetrade.state.client import RedisError
from kubetrade.state.client import ping as ping_redis
from kubetrade.state.desired import DesiredState

router = APIRouter()

_CHECKS: dict[str, Any] = {"tags": ["checks"], "responses": {**AUTH_RESPONSES, **BAD}}
"""What the routes of the latest checks (pre-flight, reconciliation) declare alike."""


def static_dir() -> Path:
    """The dashboard's files (``index.html``, scripts, styles), shipped in the package."""
    return Path(str(resources.files("kubetrade.api") / "static"))


async def _kubernetes_state(desired: DesiredState) -> str:
    """``ok``/``unreachable`` when the desired state lives on the Kubernetes API (it
    has ``ping``), ``not-configured`` for the local store."""
    ping: Callable[[], Awaitable[bool]] | None = getattr(desired, "ping", None)
    if ping is None:
        return "not-configured"
    try:
        async with asyncio.timeout(3.0):
            return "ok" if await ping() else "unreachable"
    except Exception:
        return "unreachable"


@router.get(
    "/health", response_model=s.HealthOut, tags=["ops"], responses={503: {"model": s.HealthOut}}
)
async def health(ctx: Ctx, request: Request) -> JSONResponse:
    """Redis and (in a cluster) Kubernetes reachability. No auth. ``status`` is
    ``degraded`` when either is unreachable; the code is 503 only when neither is."""
    try:
        async with asyncio.timeout(2.0):
            await ping_redis(ctx.redis)
        redis_state = "ok"
    except (RedisError, OSError, TimeoutError):
        redis_state = "unreachable"
    k8s_state = await _kubernetes_state(ctx.desired)
    ok = redis_state == "ok" and k8s_state != "unreachable"
    # 503 only when no path is left: with Redis down but the Kubernetes API up the
    # kill switch still works through the Emergency resource, so a liveness probe
    # must not restart this process.
    usable = redis_state == "ok" or k8s_state == "ok"
    body = s.HealthOut(
        status="ok" if ok else "degraded",
        redis=redis_state,  # type: ignore[arg-type]
        kubernetes=k8s_state,  # type: ignore[arg-type]
        auth_required=ctx.auth_enabled,
        time_ms=ctx.clock.now_ms(),
        state=request.app.state.state_where,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if usable else 503)


@router.get("/metrics", tags=["ops"], response_class=Response, include_in_schema=True)
async def prometheus_metrics(ctx: Ctx) -> Response:
    """Prometheus metrics of the API process (request counts/latency, WebSocket clients)."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/audit",
    response_model=s.AuditPage,
    tags=["audit"],
    responses={**AUTH_RESPONSES, **BAD},
)
async def audit_log(
    user: User,
    reader: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(pattern=STREAM_PATTERN)] = None,
    actor: Annotated[str | None, Query(max_length=253)] = None,
    action: Annotated[
        str | None, Query(max_length=128, description="Exact or dotted prefix.")
    ] = None,
    strategy: Annotated[str | None, Query(max_length=253)] = None,
    since_ms: Annotated[int | None, Query(ge=0, le=MAX_TS)] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=MAX_TS)] = None,
) -> s.AuditPage:
    """Who did what and why, newest first; filter by actor, action, strategy, time."""
    check_cursor(cursor)
    page = await reader.audit(limit, cursor, actor, action, strategy, since_ms, until_ms)
    return s.AuditPage(
        items=[
            s.AuditOut(
                id=e.id,
                ts_ms=e.ts_ms,
                actor=e.actor,
                action=e.action,
                strategy=e.strategy,
                detail=e.detail or {},
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/api/preflight",
    response_model=s.PreflightOut,
    **_CHECKS,
)
async def preflight(user: User, reader: Reader) -> s.PreflightOut:
    """The latest pre-flight report (8 checks) and the latest validation summary."""
    report = await reader.preflight()
    validation = await reader.validation_latest()
    return s.PreflightOut(available=report is not None, report=report, validation=validation)


@router.get(
    "/api/reconciliation",
    response_model=s.ReconciliationOut,
    **_CHECKS,
)
async def reconciliation(user: User, reader: Reader) -> s.ReconciliationOut:
    """Per strategy, the latest comparison of local positions with the exchange."""
    names = await reader.strategy_names()
    return s.ReconciliationOut(strategies=await reader.reconciliation(names))


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(static_dir() / "index.html", media_type="text/html")
