"""The API's shape: every endpoint a module-level function of a router in
``kubetrade/api/routes/`` (no route written as a closure inside ``create_app``), and
one spelling of the emergency actions. (That the runbook's paths are all documented is
checked by test_schemathesis.)"""

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
    assert seen > 0


def test_every_documented_operation_and_the_websocket_come_from_the_routers() -> None:
    redis = aioredis.Redis()  # never connected: building the app touches no server
    keys, clock = Keys("shape"), SystemClock()
    app = create_app(
        ApiSettings(dashboard_password="pw", jwt_secret="j" * 40),
        redis,
        LocalDesiredState(redis, keys, clock),
        clock,
        keys=keys,
    )
    documented = {
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    routed = {
        (route.path, method)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert documented and documented <= routed
    ws = [r for router in ROUTERS for r in router.routes if isinstance(r, APIWebSocketRoute)]
    assert [r.path for r in ws] == ["/api/ws"]


def test_the_api_spells_the_emergency_actions_as_the_domain_does() -> None:
    assert set(get_args(schemas.EmergencyAction)) == set(EMERGENCY_ACTIONS)
