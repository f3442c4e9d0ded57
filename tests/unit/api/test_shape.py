"""The API's shape: every endpoint a module-level function of a router in
``kubetrade/api/routes/`` (no route written as a closure inside ``create_app``), the
runbook's paths all present, one spelling of the emergency actions."""

from __future__ import annotations

import importlib
from typing import get_args

import redis.asyncio as aioredis
from fastapi.routing import APIRoute, APIWebSocketRoute

from kubetrade.api import schemas
from kubetrade.api.app import ROUTERS, create_app
from kubetrade.api.settings import ApiSettings
from kubetrade.domain.clock import SystemClock
from kubetrade.domain.emergency import EMERGENCY_ACTIONS
from kubetrade.state.desired import LocalDesiredState
from kubetrade.state.keys import Keys

RUNBOOK_PATHS = {
    "/health",
    "/metrics",
    "/api/status",
    "/api/trades",
    "/api/portfolio",
    "/api/positions",
    "/api/strategies",
    "/api/strategies/{name}/toggle",
    "/api/analytics",
    "/api/settings",
    "/api/audit",
    "/api/emergency",
    "/api/emergency/stop",
    "/api/emergency/close-all",
    "/api/emergency/resume",
    "/api/preflight",
    "/api/reconciliation",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
}


def test_every_endpoint_is_a_module_level_function_of_a_routes_module() -> None:
    seen = 0
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute | APIWebSocketRoute)
            endpoint = route.endpoint
            assert endpoint.__module__.startswith("kubetrade.api.routes."), route.path
            assert endpoint.__qualname__ == endpoint.__name__, f"{route.path} is a closure"
            module = importlib.import_module(endpoint.__module__)
            assert getattr(module, endpoint.__name__) is endpoint, route.path
            seen += 1
    assert seen >= len(RUNBOOK_PATHS) + 2  # + PUT /api/settings, WebSocket /api/ws


def test_openapi_has_the_runbooks_paths_and_the_websocket_route_exists() -> None:
    redis = aioredis.Redis()  # never connected: building the app touches no server
    keys, clock = Keys("shape"), SystemClock()
    app = create_app(
        ApiSettings(dashboard_password="pw", jwt_secret="j" * 40),
        redis,
        LocalDesiredState(redis, keys, clock),
        clock,
        keys=keys,
    )
    assert set(app.openapi()["paths"]) == RUNBOOK_PATHS
    ws = [r for router in ROUTERS for r in router.routes if isinstance(r, APIWebSocketRoute)]
    assert [r.path for r in ws] == ["/api/ws"]


def test_the_api_spells_the_emergency_actions_as_the_domain_does() -> None:
    assert set(get_args(schemas.EmergencyAction)) == set(EMERGENCY_ACTIONS)
