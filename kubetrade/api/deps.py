"""The shared objects of one API app and the ``Depends`` getters the routers use.

:func:`build_context` makes them once per app (``create_app``); the app keeps them on
``app.state.ctx`` and every route takes what it needs through the annotated aliases
below (``Reader``, ``Desired``, ``User`` ...), as Freqtrade's ``api_server/deps.py``
hands its RPC and config to its routers. Several apps can live in one process (tests),
so nothing here is a module-level singleton.
"""

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Gauge
from starlette.requests import HTTPConnection

from kubetrade.api.analytics import AnalyticsCache
from kubetrade.api.auth import (
    AuthError,
    LoginLimiter,
    PasswordCheck,
    Principal,
    TokenService,
    hash_password,
)
from kubetrade.api.security import ApiMetrics
from kubetrade.api.settings import ApiSettings
from kubetrade.api.ws import EventHub
from kubetrade.domain.clock import Clock
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import Redis
from kubetrade.state.desired import DesiredState
from kubetrade.state.keys import Keys
from kubetrade.state.reader import StateReader

log = logging.getLogger("kubetrade.api")


class Auditor:
    """Writes the API's audit records (``auth.*``) with the injected clock's time."""

    def __init__(self, redis: Redis, keys: Keys, clock: Clock) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock

    async def record(
        self, actor: str, action: str, detail: dict[str, Any], strategy: str = ""
    ) -> None:
        """Append one entry; raises ``RedisError`` when Redis is down (the route then
        answers 503 through the app's error handler)."""
        entry = AuditEntry(
            ts_ms=self._clock.now_ms(), actor=actor, action=action, strategy=strategy, detail=detail
        )
        await write_audit(self._redis, self._keys, entry)


@dataclass(frozen=True)
class ApiContext:
    """Everything the routes share. ``password`` is None when the API has no
    authentication (DASHBOARD_PASSWORD unset, loopback only)."""

    settings: ApiSettings
    redis: Redis
    keys: Keys
    clock: Clock
    desired: DesiredState
    reader: StateReader
    metrics: ApiMetrics
    tokens: TokenService
    limiter: LoginLimiter
    password: PasswordCheck | None
    hub: EventHub
    audit: Auditor
    analytics_cache: AnalyticsCache = field(default_factory=AnalyticsCache)

    @property
    def auth_enabled(self) -> bool:
        return self.password is not None


def _jwt_secret(settings: ApiSettings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    log.warning(
        "JWT_SECRET is not set: using a random per-process key; tokens stop working "
        "when this process restarts and cannot be shared between replicas"
    )
    return secrets.token_urlsafe(48)


def _password_check(settings: ApiSettings) -> PasswordCheck | None:
    if settings.dashboard_password_hash is not None:
        return PasswordCheck(
            settings.dashboard_username, settings.dashboard_password_hash.get_secret_value()
        )
    if settings.dashboard_password is not None:
        return PasswordCheck(
            settings.dashboard_username,
            hash_password(settings.dashboard_password.get_secret_value()),
        )
    log.warning(
        "DASHBOARD_PASSWORD is not set: the API has NO authentication and must only "
        "listen on loopback (127.0.0.1); set DASHBOARD_PASSWORD to expose it"
    )
    return None


def build_context(
    settings: ApiSettings, redis: Redis, desired: DesiredState, clock: Clock, keys: Keys
) -> ApiContext:
    """The shared objects of one app; logs a warning for a missing JWT secret or
    password (the first means tokens die with the process, the second no auth)."""
    metrics = ApiMetrics()
    tokens = TokenService(
        redis,
        keys,
        clock,
        _jwt_secret(settings),
        settings.access_token_ttl_seconds,
        settings.refresh_token_ttl_seconds,
    )
    limiter = LoginLimiter(redis, keys, settings.login_max_failures, settings.login_window_seconds)
    password = _password_check(settings)
    hub = EventHub(redis, keys, clock, settings.ws_queue_size, metrics)
    ws_gauge = Gauge(
        "kubetrade_api_ws_clients", "Connected WebSocket clients.", registry=metrics.registry
    )
    ws_gauge.set_function(lambda: len(hub.clients))
    return ApiContext(
        settings=settings,
        redis=redis,
        keys=keys,
        clock=clock,
        desired=desired,
        reader=StateReader(redis, keys),
        metrics=metrics,
        tokens=tokens,
        limiter=limiter,
        password=password,
        hub=hub,
        audit=Auditor(redis, keys, clock),
    )


# -- getters (FastAPI resolves each once per request; ``async`` so they run inline on
# the event loop: a plain ``def`` dependency would cost a thread-pool hop each) ---------


async def get_context(conn: HTTPConnection) -> ApiContext:
    """The app's :class:`ApiContext` (HTTP requests and WebSockets alike)."""
    ctx: ApiContext = conn.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]


def _part(name: str) -> Callable[[ApiContext], Awaitable[Any]]:
    """The getter of ``ctx.<name>`` (the alias that depends on it gives its type)."""

    async def get(ctx: Ctx) -> Any:
        return getattr(ctx, name)

    get.__name__ = f"get_{name}"
    return get


Reader = Annotated[StateReader, Depends(_part("reader"))]
Desired = Annotated[DesiredState, Depends(_part("desired"))]
Settings = Annotated[ApiSettings, Depends(_part("settings"))]
ClockDep = Annotated[Clock, Depends(_part("clock"))]
Audit = Annotated[Auditor, Depends(_part("audit"))]
Hub = Annotated[EventHub, Depends(_part("hub"))]


# -- authentication ----------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    description="Access token from POST /api/auth/login (required when DASHBOARD_PASSWORD is set).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def _authenticate(
    ctx: ApiContext, credentials: HTTPAuthorizationCredentials | None, kill_switch: bool
) -> Principal:
    """The caller; ``anonymous`` without a password. 401 with ``WWW-Authenticate`` for a
    missing or bad token. ``kill_switch`` lets a valid token through while Redis (the
    revocation list) is down, so a halt still works."""
    if ctx.password is None:
        return Principal("anonymous")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await ctx.tokens.verify_access(credentials.credentials, kill_switch=kill_switch)
    except AuthError as exc:
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None


async def principal(ctx: Ctx, credentials: Credentials) -> Principal:
    """The authenticated caller of an ordinary endpoint."""
    return await _authenticate(ctx, credentials, kill_switch=False)


async def kill_switch_principal(ctx: Ctx, credentials: Credentials) -> Principal:
    """The authenticated caller of a halt (stop, close-all): works with Redis down."""
    return await _authenticate(ctx, credentials, kill_switch=True)


User = Annotated[Principal, Depends(principal)]
KillSwitchUser = Annotated[Principal, Depends(kill_switch_principal)]
