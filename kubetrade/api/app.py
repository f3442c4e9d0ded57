"""The REST API, WebSocket and dashboard of kubetrade (``kubetrade api`` / ``local``).

Reads come from Redis through :class:`StateReader`; every change goes through the
:class:`DesiredState` given to :func:`create_app` (custom resources in a cluster, the
local store otherwise), so desired state has one source and every change is audited
there with the caller as actor. Paths and methods are the runbook's table.

The endpoints live in ``kubetrade/api/routes/`` (one ``APIRouter`` per area) and take
the shared objects from ``kubetrade/api/deps.py``; this module only assembles them.
"""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from kubetrade import __version__
from kubetrade.api.deps import ApiContext, build_context
from kubetrade.api.errors import install_error_handlers
from kubetrade.api.redact import install_log_redaction
from kubetrade.api.routes import (
    auth,
    emergency,
    events,
    ops,
    settings,
    strategies,
    trading,
    twin,
)
from kubetrade.api.security import HardeningMiddleware
from kubetrade.api.settings import ApiSettings
from kubetrade.domain.clock import Clock
from kubetrade.state.client import Redis
from kubetrade.state.desired import DesiredState
from kubetrade.state.keys import Keys, keys_from_env

# Inclusion order is the order of the OpenAPI document's paths.
ROUTERS = (
    ops.router,
    auth.router,
    trading.router,
    strategies.router,
    twin.router,
    settings.router,
    emergency.router,
    events.router,
)

DESCRIPTION = (
    "Trading state, controls and live events of kubetrade. When "
    "DASHBOARD_PASSWORD is set, every /api endpoint except login/refresh needs "
    "`Authorization: Bearer <access_token>` from `POST /api/auth/login`."
)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.ctx.hub.stop()


def _add_middleware(app: FastAPI, ctx: ApiContext) -> None:
    """CORS inside, hardening (headers, body limit, Origin rule, metrics) outermost."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(ctx.settings.cors_origins),
        allow_methods=["GET", "POST", "PUT"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(
        HardeningMiddleware,
        max_body_bytes=ctx.settings.max_body_bytes,
        metrics=ctx.metrics,
        allowed_origins=list(ctx.settings.cors_origins),
        auth_enabled=ctx.auth_enabled,
    )


def create_app(
    settings: ApiSettings,
    redis: Redis,
    desired: DesiredState,
    clock: Clock,
    keys: Keys | None = None,
    state_where: str | None = None,
) -> FastAPI:
    """The ASGI app. ``keys`` defaults to the environment's prefix; ``state_where``
    (where trading state lives, in words) is shown by /health and the dashboard."""
    install_log_redaction()
    ctx = build_context(settings, redis, desired, clock, keys or keys_from_env())
    app = FastAPI(
        title="kubetrade API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI loads from a CDN; the document is at /openapi.json
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.ctx = ctx
    app.state.hub = ctx.hub
    app.state.tokens = ctx.tokens
    app.state.settings = settings
    app.state.state_where = state_where
    _add_middleware(app, ctx)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=ops.static_dir()), name="static")
    return app
