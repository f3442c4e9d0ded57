"""The REST API, WebSocket and dashboard of kubetrade (``kubetrade api`` / ``local``).

Reads come from Redis through :class:`StateReader`; every change goes through the
:class:`DesiredState` given to :func:`create_app` (custom resources in a cluster, the
local store otherwise), so desired state has one source and every change is audited
there with the caller as actor. Paths and methods are the runbook's table.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from kubetrade import __version__
from kubetrade.api import schemas as s
from kubetrade.api.auth import (
    AuthError,
    LoginLimiter,
    PasswordCheck,
    Principal,
    TokenService,
    hash_password,
)
from kubetrade.api.security import ApiMetrics, HardeningMiddleware, origin_allowed
from kubetrade.api.settings import ApiSettings
from kubetrade.api.ws import Client, EventHub
from kubetrade.domain.clock import Clock
from kubetrade.domain.models import ClosedTrade
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.desired import DesiredState, DesiredStateError, NotFoundError
from kubetrade.state.desired_k8s import DesiredStateUnavailable
from kubetrade.state.keys import Keys, keys_from_env
from kubetrade.state.reader import (
    STREAM_ID,
    EquityPoint,
    StateReader,
    summary_decimal,
    summary_int,
    thin,
    valid_cursor,
)

log = logging.getLogger("kubetrade.api")

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
STREAM_PATTERN = STREAM_ID.pattern
SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$"
MAX_TS = 2**53

_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": s.ErrorOut, "description": "Missing, invalid, expired or revoked token."},
}
_BAD: dict[int | str, dict[str, Any]] = {
    422: {"model": s.ErrorOut, "description": "Invalid request; the message names the field."},
    503: {"model": s.ErrorOut, "description": "Redis or the Kubernetes API is unreachable."},
}


def _static_dir() -> Path:
    return Path(str(resources.files("kubetrade.api") / "static"))


def _is_running(phase: str | None) -> bool:
    return (phase or "").lower() in {"running", "trading"}


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _metrics_out(metrics: Any) -> s.MetricsOut:
    """Engine metrics (dataclass or pydantic) as the API model; non-finite ratios
    (profit factor with no losses) become null, as JSON has no infinity."""
    if hasattr(metrics, "model_dump"):
        data = metrics.model_dump()
    elif dataclasses.is_dataclass(metrics) and not isinstance(metrics, type):
        data = dataclasses.asdict(metrics)
    else:
        data = dict(vars(metrics))
    return s.MetricsOut(
        trades=int(data.get("trades") or 0),
        **{
            k: _float(data.get(k))
            for k in (
                "win_rate",
                "sharpe",
                "max_drawdown",
                "total_return",
                "profit_factor",
                "expectancy",
            )
        },
    )


def _combine_curves(curves: list[list[EquityPoint]]) -> list[EquityPoint]:
    """Total equity over time: at each timestamp, the sum of every strategy's latest
    equity (strategies count from their first point)."""
    events = sorted(
        ((p.ts_ms, i, p.equity) for i, curve in enumerate(curves) for p in curve),
        key=lambda e: (e[0], e[1]),
    )
    latest: dict[int, Decimal] = {}
    out: list[EquityPoint] = []
    for ts, i, eq in events:
        latest[i] = eq
        total = sum(latest.values(), Decimal(0))
        if out and out[-1].ts_ms == ts:
            out[-1] = EquityPoint(ts, total)
        else:
            out.append(EquityPoint(ts, total))
    return out


def _trade_out(entry_id: str, t: ClosedTrade) -> s.TradeOut:
    return s.TradeOut(
        id=entry_id,
        trade_id=t.trade_id,
        strategy=t.strategy,
        symbol=t.symbol,
        quantity=t.quantity,
        entry_price=t.entry_price,
        exit_price=t.exit_price,
        entry_ms=t.entry_ms,
        exit_ms=t.exit_ms,
        fees=t.fees,
        pnl=t.pnl,
        exit_reason=t.exit_reason,
    )


def _stats(summary: dict[str, str] | None) -> s.StrategyStatsOut | None:
    if not summary:
        return None
    return s.StrategyStatsOut(
        phase=summary.get("phase") or None,
        equity=summary_decimal(summary, "equity"),
        pnl=summary_decimal(summary, "pnl"),
        trades=summary_int(summary, "trades"),
        win_rate=_float(summary.get("win_rate") or None),
        open_positions=summary_int(summary, "open_positions"),
        halted_reason=summary.get("halted_reason") or None,
        updated_ms=summary_int(summary, "updated_ms"),
    )


_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Server logs print request paths; ``/api/ws?token=...`` must not put the access
    token in them. Rewrites ``token=<value>`` to ``token=[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", record.msg)
        return True


def _install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def create_app(
    settings: ApiSettings,
    redis: Redis,
    desired: DesiredState,
    clock: Clock,
    keys: Keys | None = None,
) -> FastAPI:
    """The ASGI app. ``keys`` defaults to the environment's prefix."""
    keys = keys or keys_from_env()
    _install_log_redaction()
    reader = StateReader(redis, keys)
    metrics = ApiMetrics()

    secret_value = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    if secret_value is None:
        secret_value = secrets.token_urlsafe(48)
        log.warning(
            "JWT_SECRET is not set: using a random per-process key; tokens stop working "
            "when this process restarts and cannot be shared between replicas"
        )
    tokens = TokenService(
        redis,
        keys,
        clock,
        secret_value,
        settings.access_token_ttl_seconds,
        settings.refresh_token_ttl_seconds,
    )
    limiter = LoginLimiter(redis, keys, settings.login_max_failures, settings.login_window_seconds)
    password: PasswordCheck | None = None
    if settings.dashboard_password_hash is not None:
        password = PasswordCheck(
            settings.dashboard_username, settings.dashboard_password_hash.get_secret_value()
        )
    elif settings.dashboard_password is not None:
        password = PasswordCheck(
            settings.dashboard_username,
            hash_password(settings.dashboard_password.get_secret_value()),
        )
    else:
        log.warning(
            "DASHBOARD_PASSWORD is not set: the API has NO authentication and must only "
            "listen on loopback (127.0.0.1); set DASHBOARD_PASSWORD to expose it"
        )
    hub = EventHub(redis, keys, clock, settings.ws_queue_size, metrics)
    analytics_cache: dict[str, tuple[Any, s.AnalyticsOut]] = {}
    ws_gauge = Gauge(
        "kubetrade_api_ws_clients", "Connected WebSocket clients.", registry=metrics.registry
    )
    ws_gauge.set_function(lambda: len(hub.clients))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.stop()

    app = FastAPI(
        title="kubetrade API",
        version=__version__,
        description="Trading state, controls and live events of kubetrade. When "
        "DASHBOARD_PASSWORD is set, every /api endpoint except login/refresh needs "
        "`Authorization: Bearer <access_token>` from `POST /api/auth/login`.",
        docs_url=None,  # Swagger UI loads from a CDN; the document is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.tokens = tokens
    app.state.settings = settings

    # -- middleware ---------------------------------------------------------------
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(
        HardeningMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        allowed_origins=list(settings.cors_origins),
        auth_enabled=password is not None,
    )

    # -- errors: never a stack trace or a secret in a body --------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> JSONResponse:
        log.error("redis error: %s", type(exc).__name__)
        return JSONResponse({"detail": "state store (Redis) unavailable"}, status_code=503)

    @app.exception_handler(DesiredStateUnavailable)
    async def _desired_down(_: Request, exc: DesiredStateUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(DesiredStateError)
    async def _desired_invalid(_: Request, exc: DesiredStateError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    # -- auth dependency ------------------------------------------------------------
    bearer = HTTPBearer(
        auto_error=False,
        description="Access token from POST /api/auth/login (required when "
        "DASHBOARD_PASSWORD is set).",
    )

    async def _authenticate(
        credentials: HTTPAuthorizationCredentials | None, kill_switch: bool
    ) -> Principal:
        if password is None:
            return Principal("anonymous")
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401, "authentication required", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            return await tokens.verify_access(credentials.credentials, kill_switch=kill_switch)
        except AuthError as exc:
            raise HTTPException(
                401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        return await _authenticate(credentials, kill_switch=False)

    async def kill_switch_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        return await _authenticate(credentials, kill_switch=True)

    User = Annotated[Principal, Depends(principal)]
    KillSwitchUser = Annotated[Principal, Depends(kill_switch_principal)]

    async def audit(actor: str, action: str, detail: dict[str, Any], strategy: str = "") -> None:
        await write_audit(
            redis,
            keys,
            AuditEntry(
                ts_ms=clock.now_ms(), actor=actor, action=action, strategy=strategy, detail=detail
            ),
        )

    # -- health & metrics -----------------------------------------------------------
    @app.get(
        "/health", response_model=s.HealthOut, tags=["ops"], responses={503: {"model": s.HealthOut}}
    )
    async def health() -> JSONResponse:
        """Redis and (in a cluster) Kubernetes reachability. No auth. ``status`` is
        ``degraded`` when either is unreachable; the code is 503 only when neither is."""
        try:
            await asyncio.wait_for(redis.ping(), 2.0)  # type: ignore[misc]
            redis_state = "ok"
        except (RedisError, OSError, TimeoutError):
            redis_state = "unreachable"
        k8s_state = "not-configured"
        ping: Callable[[], Awaitable[bool]] | None = getattr(desired, "ping", None)
        if ping is not None:
            try:
                k8s_state = "ok" if await asyncio.wait_for(ping(), 3.0) else "unreachable"
            except Exception:
                k8s_state = "unreachable"
        ok = redis_state == "ok" and k8s_state != "unreachable"
        # 503 only when no path is left: with Redis down but the Kubernetes API up the
        # kill switch still works through the Emergency resource, so a liveness probe
        # must not restart this process.
        usable = redis_state == "ok" or k8s_state == "ok"
        body = s.HealthOut(
            status="ok" if ok else "degraded",
            redis=redis_state,  # type: ignore[arg-type]
            kubernetes=k8s_state,  # type: ignore[arg-type]
            auth_required=password is not None,
            time_ms=clock.now_ms(),
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if usable else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response, include_in_schema=True)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics of the API process (request counts/latency, WebSocket clients)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- auth -----------------------------------------------------------------------
    def _client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @app.post(
        "/api/auth/login",
        response_model=s.TokenOut,
        tags=["auth"],
        responses={
            400: {"model": s.ErrorOut, "description": "Authentication is disabled."},
            401: {"model": s.ErrorOut, "description": "Wrong username or password."},
            429: {"model": s.ErrorOut, "description": "Too many failed logins; see Retry-After."},
            **_BAD,
        },
    )
    async def login(body: s.LoginIn, request: Request) -> s.TokenOut:
        """Exchange the dashboard password for an access and a refresh token."""
        if password is None:
            raise HTTPException(400, "authentication is disabled: DASHBOARD_PASSWORD is not set")
        client = _client(request)
        retry = await limiter.attempt(client)
        if retry is not None:
            metrics.login_failures.inc()
            await audit("api:unauthenticated", "auth.login_throttled", {"client": client})
            raise HTTPException(
                429,
                f"too many failed logins; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        ok = await asyncio.to_thread(password.check, body.username, body.password)
        if not ok:
            metrics.login_failures.inc()
            await audit(
                "api:unauthenticated",
                "auth.login_failed",
                # an unknown name is not recorded: it is often the password typed
                # into the wrong field
                {
                    "client": client,
                    "username": body.username
                    if body.username == settings.dashboard_username
                    else "(unknown)",
                },
            )
            raise HTTPException(
                401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
            )
        await limiter.succeeded(client)
        pair = await tokens.issue(body.username)
        await audit(f"api:{body.username}", "auth.login", {"client": client})
        return s.TokenOut(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )

    @app.post(
        "/api/auth/refresh",
        response_model=s.TokenOut,
        tags=["auth"],
        responses={
            400: {"model": s.ErrorOut, "description": "Authentication is disabled."},
            401: {"model": s.ErrorOut, "description": "Invalid, expired, revoked or reused."},
            **_BAD,
        },
    )
    async def refresh(body: s.RefreshIn) -> s.TokenOut:
        """Rotate a refresh token: returns a new pair; the presented token is spent.
        Presenting a spent refresh token again revokes the whole session."""
        if password is None:
            raise HTTPException(400, "authentication is disabled: DASHBOARD_PASSWORD is not set")
        try:
            pair, _user = await tokens.refresh(body.refresh_token)
        except AuthError as exc:
            if "reuse" in str(exc):
                await audit("api:unauthenticated", "auth.refresh_reuse", {})
            raise HTTPException(
                401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        return s.TokenOut(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )

    @app.post(
        "/api/auth/logout",
        status_code=204,
        tags=["auth"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def logout(user: User) -> Response:
        """Revoke the session: the access token and every refresh token of its login."""
        if user.claims is not None:
            await tokens.revoke(user.claims)
            await tokens.revoke_family(str(user.claims["fam"]))
            await audit(user.actor, "auth.logout", {})
        return Response(status_code=204)

    # -- state ----------------------------------------------------------------------
    @app.get(
        "/api/status",
        response_model=s.StatusOut,
        tags=["state"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def status(user: User) -> s.StatusOut:
        """Is trading running? ``stopped`` while an emergency stop/close-all is in force."""
        names = await reader.strategy_names()
        summaries = await reader.summaries(names)
        emergency = await reader.emergency()
        action = emergency.get("action") or "none"
        if action not in ("none", "stop", "close-all"):
            action = "none"
        items = [
            s.StrategyStatusOut(
                name=n,
                phase=summaries[n].get("phase") or None,
                halted_reason=summaries[n].get("halted_reason") or None,
                updated_ms=summary_int(summaries[n], "updated_ms"),
            )
            for n in names
        ]
        if action != "none":
            state = "stopped"
        elif any(_is_running(i.phase) and not i.halted_reason for i in items):
            state = "running"
        elif items:
            state = "halted"
        else:
            state = "idle"
        return s.StatusOut(
            status=state,  # type: ignore[arg-type]
            emergency=action,  # type: ignore[arg-type]
            strategies=items,
            time_ms=clock.now_ms(),
        )

    @app.get(
        "/api/trades",
        response_model=s.TradesPage,
        tags=["state"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def trades(
        user: User,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=STREAM_PATTERN, description="`next_cursor` of the previous page."),
        ] = None,
        strategy: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=253)] = None,
        symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
        since_ms: Annotated[
            int | None, Query(ge=0, le=MAX_TS, description="Exit time >= (ms).")
        ] = None,
        until_ms: Annotated[
            int | None, Query(ge=0, le=MAX_TS, description="Exit time <= (ms).")
        ] = None,
    ) -> s.TradesPage:
        """Closed trades, newest first, paged by cursor."""
        _check_cursor(cursor)
        page = await reader.trades(limit, cursor, strategy, symbol, since_ms, until_ms)
        return s.TradesPage(
            items=[_trade_out(r.id, r.trade) for r in page.items], next_cursor=page.next_cursor
        )

    def _positions_out(positions: dict[str, list[Any]]) -> list[s.PositionOut]:
        return [
            s.PositionOut(
                strategy=name,
                symbol=p.symbol,
                quantity=p.quantity,
                average_price=p.average_price,
                opened_ms=p.opened_ms,
                stop_price=p.stop_price,
                fees=p.fees,
            )
            for name, plist in sorted(positions.items())
            for p in plist
        ]

    @app.get(
        "/api/portfolio",
        response_model=s.PortfolioOut,
        tags=["state"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def portfolio(user: User) -> s.PortfolioOut:
        """Equity and P&L over every strategy, and the open positions."""
        summaries, positions = await reader.overview()
        equity, pnl = Decimal(0), Decimal(0)
        rows: list[s.StrategyPortfolioOut] = []
        updated: list[int] = []
        for name, summary in sorted(summaries.items()):
            eq, pl = summary_decimal(summary, "equity"), summary_decimal(summary, "pnl")
            equity += eq or 0
            pnl += pl or 0
            if (u := summary_int(summary, "updated_ms")) is not None:
                updated.append(u)
            rows.append(
                s.StrategyPortfolioOut(
                    name=name,
                    phase=summary.get("phase") or None,
                    equity=eq,
                    pnl=pl,
                    open_positions=len(positions.get(name, [])),
                )
            )
        out_positions = _positions_out(positions)
        return s.PortfolioOut(
            equity=equity,
            pnl=pnl,
            open_positions=len(out_positions),
            strategies=rows,
            positions=out_positions,
            updated_ms=max(updated) if updated else None,
        )

    @app.get(
        "/api/positions",
        response_model=list[s.PositionOut],
        tags=["state"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def positions(
        user: User,
        strategy: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=253)] = None,
    ) -> list[s.PositionOut]:
        """Open positions of every strategy (or one)."""
        names = [strategy] if strategy else await reader.strategy_names()
        return _positions_out(await reader.positions(names))

    @app.get(
        "/api/strategies",
        response_model=list[s.StrategyOut],
        tags=["strategies"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def strategies(user: User) -> list[s.StrategyOut]:
        """Every configured strategy with its live stats (and any with state but no
        Strategy any more)."""
        manifests = {
            (m.get("metadata") or {}).get("name", ""): m for m in await desired.list_strategies()
        }
        manifests.pop("", None)
        state_names = await reader.strategy_names()
        names = sorted(set(manifests) | set(state_names))
        summaries = await reader.summaries(names)
        out: list[s.StrategyOut] = []
        for n in names:
            spec = (manifests.get(n) or {}).get("spec") or {}
            out.append(
                s.StrategyOut(
                    name=n,
                    configured=n in manifests,
                    enabled=bool(spec.get("enabled", True)) if n in manifests else None,
                    algorithm=spec.get("algorithm"),
                    mode=spec.get("mode"),
                    symbols=list(spec.get("symbols") or []),
                    timeframe=spec.get("timeframe"),
                    parameters=dict(spec.get("parameters") or {}),
                    risk_policy_ref=spec.get("riskPolicyRef"),
                    stats=_stats(summaries.get(n)),
                )
            )
        return out

    @app.post(
        "/api/strategies/{name}/toggle",
        response_model=s.ToggleOut,
        tags=["strategies"],
        responses={
            **_AUTH_RESPONSES,
            404: {"model": s.ErrorOut, "description": "No such strategy."},
            **_BAD,
        },
    )
    async def toggle(
        user: User,
        name: Annotated[str, PathParam(pattern=NAME_PATTERN, max_length=253)],
        body: Annotated[s.ToggleIn | None, Body()] = None,
    ) -> s.ToggleOut:
        """Enable or disable a strategy (flip when no body). A disabled strategy's runner
        stops opening positions; the change is audited with the caller."""
        manifest = await desired.get_strategy(name)
        current = bool((manifest.get("spec") or {}).get("enabled", True))
        target = body.enabled if body is not None and body.enabled is not None else not current
        updated = await desired.set_strategy_enabled(name, target, user.actor)
        return s.ToggleOut(
            name=name, enabled=bool((updated.get("spec") or {}).get("enabled", target))
        )

    @app.get(
        "/api/analytics",
        response_model=s.AnalyticsOut,
        tags=["state"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def analytics(
        user: User,
        max_points: Annotated[
            int, Query(ge=2, le=10_000, description="Equity curve points per series.")
        ] = 500,
    ) -> s.AnalyticsOut:
        """Performance metrics (engine formulas) and equity curves, overall and per
        strategy."""
        names = await reader.strategy_names()
        trades_by: dict[str, list[ClosedTrade]] = {}
        curves: dict[str, list[EquityPoint]] = {}
        for n in names:
            trades_by[n] = await reader.cached_trades(n)
            curves[n] = await reader.cached_equity(n)
        marks = (max_points, tuple((n, reader.stream_marks(n)) for n in names))
        cached = analytics_cache.get("result")
        if cached is not None and cached[0] == marks:
            return cached[1]  # type: ignore[no-any-return]
        # CPU-bound over up to 10^5 trades: off the event loop, so other requests and
        # WebSocket pushes keep flowing meanwhile.
        result = await asyncio.to_thread(_analytics, names, trades_by, curves, max_points)
        analytics_cache["result"] = (marks, result)
        return result

    # -- settings -------------------------------------------------------------------
    async def _settings_out() -> s.SettingsOut:
        manifest = await desired.get_risk_policy(settings.risk_policy)
        return s.SettingsOut(
            risk_policy=settings.risk_policy,
            risk=dict(manifest.get("spec") or {}),
            runtime=settings.masked_runtime(),
        )

    @app.get(
        "/api/settings",
        response_model=s.SettingsOut,
        tags=["settings"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def get_settings(user: User) -> s.SettingsOut:
        """The risk limits in force and the process configuration (secrets masked)."""
        return await _settings_out()

    @app.put(
        "/api/settings",
        response_model=s.SettingsOut,
        tags=["settings"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def put_settings(user: User, body: s.SettingsIn) -> s.SettingsOut:
        """Change risk limits; validated with the engine's RiskLimits and written to the
        RiskPolicy, which running strategies apply without restarting."""
        patch = _normalise_risk_patch(body.risk)
        await desired.update_risk_policy(settings.risk_policy, patch, user.actor)
        return await _settings_out()

    # -- audit ----------------------------------------------------------------------
    @app.get(
        "/api/audit",
        response_model=s.AuditPage,
        tags=["audit"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def audit_log(
        user: User,
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
        _check_cursor(cursor)
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

    # -- emergency ------------------------------------------------------------------
    async def _emergency_out(tolerate_redis_down: bool = False) -> s.EmergencyOut:
        state = await desired.get_emergency()
        try:
            acks = await reader.emergency_acks()
        except RedisError:
            if not tolerate_redis_down:
                raise
            acks = {}  # the stop went through the Emergency resource; acks come later
        action = state.get("action") or "none"
        return s.EmergencyOut(
            action=action if action in ("none", "stop", "close-all") else "none",
            since_ms=int(state.get("since_ms") or 0),
            by=str(state.get("by") or ""),
            reason=str(state.get("reason") or ""),
            acks={
                r: s.AckOut(
                    action=a.get("action"),
                    ts_ms=a.get("ts_ms") if isinstance(a.get("ts_ms"), int) else None,
                    cancelled=[str(c) for c in a.get("cancelled") or []],
                )
                for r, a in acks.items()
            },
        )

    @app.get(
        "/api/emergency",
        response_model=s.EmergencyOut,
        tags=["emergency"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def get_emergency(user: User) -> s.EmergencyOut:
        """The emergency action in force and each runner's acknowledgement."""
        return await _emergency_out()

    def _emergency_route(path: str, action: str, doc: str) -> None:
        async def handler(
            user: User, body: Annotated[s.EmergencyIn | None, Body()] = None
        ) -> s.EmergencyOut:
            reason = body.reason if body is not None else ""
            await desired.set_emergency(action, user.actor, reason or f"{path} via API")
            return await _emergency_out()

        async def halt_handler(
            user: KillSwitchUser, body: Annotated[s.EmergencyIn | None, Body()] = None
        ) -> s.EmergencyOut:
            # Halting must work while Redis is down (token revocation unchecked, acks
            # unreadable): the Emergency resource reaches the runners on its own.
            reason = body.reason if body is not None else ""
            await desired.set_emergency(action, user.actor, reason or f"{path} via API")
            return await _emergency_out(tolerate_redis_down=True)

        route = halt_handler if action != "none" else handler
        route.__doc__ = doc
        app.post(
            f"/api/emergency/{path}",
            response_model=s.EmergencyOut,
            tags=["emergency"],
            name=f"emergency_{path.replace('-', '_')}",
            responses={**_AUTH_RESPONSES, **_BAD},
        )(route)

    _emergency_route("stop", "stop", "Halt every runner and cancel open orders; positions stay.")
    _emergency_route(
        "close-all", "close-all", "Halt every runner and sell every position at market."
    )
    _emergency_route("resume", "none", "Let runners trade again after an emergency.")

    # -- pre-flight & reconciliation --------------------------------------------------
    @app.get(
        "/api/preflight",
        response_model=s.PreflightOut,
        tags=["checks"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def preflight(user: User) -> s.PreflightOut:
        """The latest pre-flight report (8 checks) and the latest validation summary."""
        report = await reader.preflight()
        validation = await reader.validation_latest()
        return s.PreflightOut(available=report is not None, report=report, validation=validation)

    @app.get(
        "/api/reconciliation",
        response_model=s.ReconciliationOut,
        tags=["checks"],
        responses={**_AUTH_RESPONSES, **_BAD},
    )
    async def reconciliation(user: User) -> s.ReconciliationOut:
        """Per strategy, the latest comparison of local positions with the exchange."""
        names = await reader.strategy_names()
        return s.ReconciliationOut(strategies=await reader.reconciliation(names))

    # -- websocket ------------------------------------------------------------------
    def _origin_ok(origin: str | None, host: str | None) -> bool:
        # no Origin: not a browser (browsers always send Origin on WebSockets)
        return origin_allowed(origin, host, list(settings.cors_origins), password is not None)

    @app.websocket("/api/ws")
    async def websocket(ws: WebSocket, token: str | None = None) -> None:
        """Live events. Authenticate with ``?token=<access>`` or a first message
        ``{"type": "auth", "token": "<access>"}``. Messages are runner events
        (``{"type", "ts_ms", "strategy", "data"}``); ``{"type": "resync"}`` means
        events were dropped and state should be re-read."""
        if not _origin_ok(ws.headers.get("origin"), ws.headers.get("host")):
            await ws.close(code=1008)
            return
        await ws.accept()
        expires_at: int | None = None
        user = "anonymous"
        if password is not None:
            candidate = token
            if candidate is None:
                try:
                    first = await asyncio.wait_for(
                        ws.receive_text(), settings.ws_auth_timeout_seconds
                    )
                    msg = json.loads(first)
                    if isinstance(msg, dict) and msg.get("type") == "auth":
                        candidate = str(msg.get("token") or "")
                except (TimeoutError, ValueError, WebSocketDisconnect, RuntimeError):
                    candidate = None
            try:
                who = await tokens.verify_access(candidate or "")
            except AuthError:
                with contextlib.suppress(Exception):
                    await ws.close(code=4401, reason="unauthorized")
                return
            user = who.username
            expires_at = int((who.claims or {}).get("exp", 0))
        hub.ensure_started()
        await hub.wait_ready()
        client = Client(ws, hub.queue_size)
        hub.clients.add(client)
        try:
            await ws.send_text(json.dumps({"type": "hello", "ts_ms": clock.now_ms(), "user": user}))
            sender = asyncio.create_task(client.pump())
            receiver = asyncio.create_task(_drain(ws, client))
            timeout = None
            if expires_at is not None:
                timeout = max(0.0, expires_at - clock.now_ms() / 1000)
            done, pending = await asyncio.wait(
                {sender, receiver}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
            if not done:  # the token expired: the client reconnects with a fresh one
                with contextlib.suppress(Exception):
                    await ws.close(code=4401, reason="token expired")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            hub.clients.discard(client)

    # -- dashboard ------------------------------------------------------------------
    static = _static_dir()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


async def _drain(ws: WebSocket, client: Client) -> None:
    """Read (and mostly ignore) client messages; answer pings; end on disconnect."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text and text.strip() == '{"type":"ping"}':
            client.offer('{"type":"pong"}')


def _analytics(
    names: list[str],
    trades_by: dict[str, list[ClosedTrade]],
    curves: dict[str, list[EquityPoint]],
    max_points: int,
) -> s.AnalyticsOut:
    from kubetrade.domain.metrics import compute_metrics

    per = {n: _block(compute_metrics, trades_by[n], curves[n], max_points) for n in names}
    all_trades = sorted((t for n in names for t in trades_by[n]), key=lambda t: t.exit_ms)
    combined = _combine_curves([curves[n] for n in names])
    overall = _block(compute_metrics, all_trades, combined, max_points)
    return s.AnalyticsOut(overall=overall, strategies=per)


def _block(
    compute: Callable[..., Any],
    trades: list[ClosedTrade],
    curve: list[EquityPoint],
    max_points: int,
) -> s.AnalyticsBlock:

    metrics = compute(trades, [(p.ts_ms, p.equity) for p in curve])
    return s.AnalyticsBlock(
        metrics=_metrics_out(metrics),
        pnl=sum((t.pnl for t in trades), Decimal(0)),
        equity_curve=[
            s.EquityPointOut(ts_ms=p.ts_ms, equity=p.equity) for p in thin(curve, max_points)
        ],
    )


def _check_cursor(cursor: str | None) -> None:
    if cursor is not None and not valid_cursor(cursor):
        raise HTTPException(422, "cursor: not a stream id (ms-seq, each at most 2^64-1)")


def _normalise_risk_patch(patch: BaseModel) -> dict[str, Any]:
    """The set fields in CR spelling (camelCase), Decimals as JSON numbers as the CRD
    types them."""
    out: dict[str, Any] = {}
    for key, value in patch.model_dump(by_alias=True, exclude_unset=True).items():
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        out[key] = value
    if not out:
        raise DesiredStateError("risk: at least one setting to change is required")
    return out
