"""KubernetesDesiredState against a real kube-apiserver with kubetrade's CRDs, and the
API on top of it: toggles, risk settings and the kill switch are custom-resource
changes; the kill switch also reaches Redis when the API server does not answer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from kubernetes import client as k8s

from kubetrade.api.app import create_app
from kubetrade.domain.clock import SystemClock
from kubetrade.state.desired import DesiredStateError, NotFoundError
from kubetrade.state.desired_k8s import (
    GROUP,
    VERSION,
    DesiredStateUnavailable,
    KubernetesDesiredState,
)
from kubetrade.state.keys import Keys
from tests.fixtures.api import API_PASSWORD, api_settings
from tests.integration.api._seed import strategy_manifest


@pytest.fixture
def keys() -> Keys:
    return Keys(f"k{uuid.uuid4().hex[:8]}")


@pytest.fixture
def desired(
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Path,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> KubernetesDesiredState:
    return KubernetesDesiredState(k8s_namespace, k8s_api_client, redis_client, keys)


def _cr(api: k8s.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any]:
    obj: Any = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, plural, name
    )
    return dict(obj)


async def test_strategies_on_custom_resources(
    desired: KubernetesDesiredState,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    await desired.put_strategy(strategy_manifest("btc-sma"), "api:admin")
    assert [m["metadata"]["name"] for m in await desired.list_strategies()] == ["btc-sma"]
    assert (await desired.get_strategy("btc-sma"))["spec"]["algorithm"] == "sma-crossover"
    await desired.set_strategy_enabled("btc-sma", False, "api:admin")
    assert _cr(k8s_api_client, k8s_namespace, "strategies", "btc-sma")["spec"]["enabled"] is False
    with pytest.raises(NotFoundError):
        await desired.get_strategy("nope")
    with pytest.raises(NotFoundError):
        await desired.set_strategy_enabled("nope", True, "api:admin")
    entries: Any = await redis_client.xrange(keys.audit)
    assert [(f["action"], f["actor"]) for _, f in entries] == [
        ("strategy.put", "api:admin"),
        ("strategy.enabled", "api:admin"),
    ]


async def test_risk_policy_created_patched_and_validated(
    desired: KubernetesDesiredState, k8s_api_client: k8s.ApiClient, k8s_namespace: str
) -> None:
    default = await desired.get_risk_policy("default")
    assert float(default["spec"]["stopLossPct"]) == 5.0
    await desired.update_risk_policy("default", {"stopLossPct": 4}, "api:admin")
    await desired.update_risk_policy("default", {"maxConcurrentPositions": 2}, "api:admin")
    spec = _cr(k8s_api_client, k8s_namespace, "riskpolicies", "default")["spec"]
    assert spec["stopLossPct"] == 4 and spec["maxConcurrentPositions"] == 2
    with pytest.raises(DesiredStateError, match="stopLossPct"):
        await desired.update_risk_policy("default", {"stopLossPct": 500}, "api:admin")


async def test_emergency_on_the_resource_and_mirrored_to_redis(
    desired: KubernetesDesiredState,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    assert (await desired.get_emergency())["action"] == "none"
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.emergency_channel)
    await desired.set_emergency("stop", "api:admin", "drill")
    cr = _cr(k8s_api_client, k8s_namespace, "emergencies", "default")
    assert cr["spec"] == {"action": "stop", "reason": "drill", "requestedBy": "api:admin"}
    assert (await redis_client.hgetall(keys.emergency))["action"] == "stop"
    message = None
    while message is None or message["type"] != "message":
        message = await pubsub.get_message(timeout=5)
        assert message is not None, "no emergency message on the channel"
    assert json.loads(message["data"])["action"] == "stop"
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    state = await desired.get_emergency()
    assert state["action"] == "stop" and state["by"] == "api:admin" and state["since_ms"] > 0
    await desired.set_emergency("none", "api:admin", "over")
    assert _cr(k8s_api_client, k8s_namespace, "emergencies", "default")["spec"]["action"] == "none"
    assert (await redis_client.hgetall(keys.emergency))["action"] == "none"


async def test_stop_reaches_redis_when_the_api_server_is_down(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    cfg = k8s.Configuration()
    cfg.host = "https://127.0.0.1:9"  # nothing listens there
    cfg.retries = 0
    down = KubernetesDesiredState("default", k8s.ApiClient(cfg), redis_client, keys)
    assert await down.ping() is False
    with pytest.raises(DesiredStateUnavailable, match="through Redis only"):
        await down.set_emergency("stop", "api:admin", "apiserver down")
    assert (await redis_client.hgetall(keys.emergency))["action"] == "stop"
    # resume must not happen through Redis alone while the resource may still say stop
    with pytest.raises(DesiredStateUnavailable):
        await down.set_emergency("none", "api:admin", "")
    assert (await redis_client.hgetall(keys.emergency))["action"] == "stop"

    app = create_app(api_settings(dashboard_password=None), redis_client, down, SystemClock(), keys)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        health = await client.get("/health")
        assert health.status_code == 200  # Redis still carries the kill switch
        assert health.json()["kubernetes"] == "unreachable"
        assert health.json()["status"] == "degraded"
        r = await client.post("/api/emergency/stop")
        assert r.status_code == 503
        assert "through Redis only" in r.json()["detail"]


async def test_api_changes_custom_resources(
    desired: KubernetesDesiredState,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    await desired.put_strategy(strategy_manifest("eth-rsi", "ETH/USDT"), "test")
    app = create_app(api_settings(), redis_client, desired, SystemClock(), keys)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/health")).json()["kubernetes"] == "ok"
        login = await client.post("/api/auth/login", json={"password": API_PASSWORD})
        h = {"Authorization": f"Bearer {login.json()['access_token']}"}
        r = await client.post("/api/strategies/eth-rsi/toggle", headers=h)
        assert r.json() == {"name": "eth-rsi", "enabled": False}
        cr = _cr(k8s_api_client, k8s_namespace, "strategies", "eth-rsi")
        assert cr["spec"]["enabled"] is False
        r = await client.put("/api/settings", json={"risk": {"dailyLossLimitPct": 2.5}}, headers=h)
        assert r.status_code == 200, r.text
        spec = _cr(k8s_api_client, k8s_namespace, "riskpolicies", "default")["spec"]
        assert spec["dailyLossLimitPct"] == 2.5
        r = await client.post("/api/emergency/close-all", json={"reason": "k8s"}, headers=h)
        assert r.json()["action"] == "close-all"
        cr = _cr(k8s_api_client, k8s_namespace, "emergencies", "default")
        assert cr["spec"]["action"] == "close-all"
        strategies = (await client.get("/api/strategies", headers=h)).json()
        assert [s["name"] for s in strategies] == ["eth-rsi"]


async def test_kill_switch_works_with_a_token_while_redis_is_down(
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Path,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    """Logged in, then Redis dies: the token's revocation cannot be checked, but stop and
    close-all must still reach the Emergency resource (the operator's runners watch it).
    Everything else, resume included, stays refused."""
    live = KubernetesDesiredState(k8s_namespace, k8s_api_client, redis_client, keys)
    up = create_app(api_settings(), redis_client, live, SystemClock(), keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=up), base_url="http://t") as c:
        login = await c.post("/api/auth/login", json={"password": API_PASSWORD})
        h = {"Authorization": f"Bearer {login.json()['access_token']}"}

    dead = aioredis.from_url("redis://127.0.0.1:9/0", decode_responses=True)
    desired = KubernetesDesiredState(k8s_namespace, k8s_api_client, dead, keys)
    app = create_app(api_settings(), dead, desired, SystemClock(), keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/emergency/stop", json={"reason": "redis down"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["action"] == "stop"
        cr = _cr(k8s_api_client, k8s_namespace, "emergencies", "default")
        assert cr["spec"]["action"] == "stop" and cr["spec"]["requestedBy"] == "api:admin"
        r = await c.post("/api/emergency/close-all", headers=h)
        assert r.status_code == 200, r.text
        assert _cr(k8s_api_client, k8s_namespace, "emergencies", "default")["spec"][
            "action"
        ] == "close-all"
        # no token, a forged token: still refused
        assert (await c.post("/api/emergency/stop")).status_code == 401
        forged = {"Authorization": "Bearer " + h["Authorization"].split()[1][:-4] + "AAAA"}
        assert (await c.post("/api/emergency/stop", headers=forged)).status_code == 401
        # resuming needs the revocation check
        assert (await c.post("/api/emergency/resume", headers=h)).status_code == 503
        assert _cr(k8s_api_client, k8s_namespace, "emergencies", "default")["spec"][
            "action"
        ] == "close-all"
    await dead.aclose()


async def test_kill_switch_does_not_hang_on_a_redis_that_never_answers(
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Path,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    """Redis on a dead node: connections open (or were open) but nothing answers. The
    stop must still reach the Emergency resource promptly, not wait on Redis forever."""
    import asyncio

    live = KubernetesDesiredState(k8s_namespace, k8s_api_client, redis_client, keys)
    up = create_app(api_settings(), redis_client, live, SystemClock(), keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=up), base_url="http://t") as c:
        login = await c.post("/api/auth/login", json={"password": API_PASSWORD})
        h = {"Authorization": f"Bearer {login.json()['access_token']}"}

    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = aioredis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
    desired = KubernetesDesiredState(k8s_namespace, k8s_api_client, silent, keys)
    app = create_app(api_settings(), silent, desired, SystemClock(), keys)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            # the bound only turns a hang into a failure; it does not measure speed
            r = await asyncio.wait_for(
                c.post("/api/emergency/stop", json={"reason": "redis hung"}, headers=h), 60
            )
            assert r.status_code == 200, r.text
            cr = _cr(k8s_api_client, k8s_namespace, "emergencies", "default")
            assert cr["spec"]["action"] == "stop"
    finally:
        for w in held:
            w.close()
        server.close()
        await silent.aclose()


async def test_the_stop_reaches_the_emergency_resource_while_redis_still_hangs(
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Path,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resource the operator acts on is written at once, not after the Redis write
    gives up (before, a hung Redis held the stop back from the resource for the 5 s
    socket timeout of each of its commands: ~20 s in the test above). Here Redis hangs
    until the test lets go of it, and the resource says stop before that."""
    import asyncio

    import kubetrade.state.desired_k8s as desired_k8s

    monkeypatch.setattr(desired_k8s, "REDIS_WAIT_S", 120.0)
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = aioredis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True,
                               socket_timeout=120)
    desired = KubernetesDesiredState(k8s_namespace, k8s_api_client, silent, keys)
    stop = asyncio.create_task(desired.set_emergency("stop", "alice", "redis hung"))
    try:
        async with asyncio.timeout(60):  # turns a hang into a failure only
            while True:
                try:
                    cr = await asyncio.to_thread(
                        _cr, k8s_api_client, k8s_namespace, "emergencies", "default")
                except k8s.ApiException:
                    cr = {}
                if (cr.get("spec") or {}).get("action") == "stop":
                    break
                await asyncio.sleep(0.05)
        assert not stop.done(), "the answer came before Redis let go: nothing was shown"
        assert cr["spec"]["requestedBy"] == "alice"
        for w in held:  # Redis goes away: the mirror gives up, the stop answers
            w.close()
        state = await asyncio.wait_for(stop, 60)
        assert state["action"] == "stop"
    finally:
        stop.cancel()
        for w in held:
            w.close()
        server.close()
        await silent.aclose()
