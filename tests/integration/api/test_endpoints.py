"""Every runbook endpoint against real Redis and the real local desired state."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kubetrade.api.settings import MASK
from tests.fixtures.api import API_PASSWORD, JWT_SECRET, MakeApi
from tests.integration.api._seed import T0, seed_strategy, strategy_manifest

# (method, path, json body) of every data endpoint of the runbook table.
DATA_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/status", None),
    ("GET", "/api/trades", None),
    ("GET", "/api/portfolio", None),
    ("GET", "/api/positions", None),
    ("GET", "/api/strategies", None),
    ("POST", "/api/strategies/btc-sma/toggle", {"enabled": False}),
    ("GET", "/api/analytics", None),
    ("GET", "/api/settings", None),
    ("PUT", "/api/settings", {"risk": {"stopLossPct": 4}}),
    ("GET", "/api/audit", None),
    ("POST", "/api/emergency/stop", None),
    ("POST", "/api/emergency/close-all", None),
    ("POST", "/api/emergency/resume", None),
    ("GET", "/api/emergency", None),
    ("GET", "/api/preflight", None),
    ("GET", "/api/reconciliation", None),
]


async def _seeded(make_api: MakeApi, **kw: Any) -> Any:
    api = await make_api(**kw)
    await api.desired.put_strategy(strategy_manifest("btc-sma"), "test")
    await api.desired.put_strategy(strategy_manifest("eth-rsi", "ETH/USDT"), "test")
    await seed_strategy(api.redis, api.keys, "btc-sma", "BTC/USDT", n_trades=30)
    await seed_strategy(api.redis, api.keys, "eth-rsi", "ETH/USDT", n_trades=12, equity="9950")
    return api


@pytest.mark.parametrize(("method", "path", "body"), DATA_ENDPOINTS)
async def test_data_endpoint_needs_token_and_works_with_one(
    make_api: MakeApi, method: str, path: str, body: Any
) -> None:
    api = await _seeded(make_api)
    r = await api.client.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await api.client.request(method, path, json=body, headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401
    r = await api.client.request(method, path, json=body, headers=await api.auth())
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("method", "path", "body"), DATA_ENDPOINTS)
async def test_without_password_every_endpoint_is_open(
    make_api: MakeApi, method: str, path: str, body: Any
) -> None:
    api = await _seeded(make_api, dashboard_password=None)
    r = await api.client.request(method, path, json=body)
    assert r.status_code == 200, r.text


async def test_login_disabled_without_password(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    r = await api.client.post("/api/auth/login", json={"password": "x"})
    assert r.status_code == 400
    assert "DASHBOARD_PASSWORD" in r.json()["detail"]


async def test_health_needs_no_token_and_reports_dependencies(make_api: MakeApi) -> None:
    api = await make_api()
    r = await api.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["redis"] == "ok"
    assert body["kubernetes"] == "not-configured"
    assert body["auth_required"] is True


async def test_login_contract(make_api: MakeApi) -> None:
    api = await make_api()
    r = await api.client.post("/api/auth/login", json={"password": API_PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    r = await api.client.post(
        "/api/auth/login", json={"username": "root", "password": API_PASSWORD}
    )
    assert r.status_code == 401


async def test_portfolio_and_positions_from_runner_state(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    p = (await api.client.get("/api/portfolio", headers=h)).json()
    assert p["equity"] == "20050"
    assert p["pnl"] == "200"
    assert p["open_positions"] == 2
    assert {s["name"] for s in p["strategies"]} == {"btc-sma", "eth-rsi"}
    positions = (await api.client.get("/api/positions", headers=h)).json()
    assert [(x["strategy"], x["symbol"]) for x in positions] == [
        ("btc-sma", "BTC/USDT"),
        ("eth-rsi", "ETH/USDT"),
    ]
    assert positions[0]["average_price"] == "30000.5"
    one = (await api.client.get("/api/positions?strategy=eth-rsi", headers=h)).json()
    assert [x["symbol"] for x in one] == ["ETH/USDT"]


async def test_trades_pagination_is_complete_and_ordered(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/api/trades", params=params, headers=h)).json()
        seen.extend(t["trade_id"] for t in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 42 and len(set(seen)) == 42
    # newest first: eth-rsi's trades were written last
    assert seen[0] == "eth-rsi-11"


async def test_trades_filters(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    r = await api.client.get("/api/trades", params={"symbol": "ETH/USDT", "limit": 100}, headers=h)
    assert {t["symbol"] for t in r.json()["items"]} == {"ETH/USDT"}
    assert len(r.json()["items"]) == 12
    r = await api.client.get("/api/trades", params={"strategy": "btc-sma", "limit": 100}, headers=h)
    assert len(r.json()["items"]) == 30
    since, until = T0 + 10 * 60_000, T0 + 19 * 60_000 + 30_000
    r = await api.client.get(
        "/api/trades",
        params={"strategy": "btc-sma", "since_ms": since, "until_ms": until, "limit": 100},
        headers=h,
    )
    ids = [t["trade_id"] for t in r.json()["items"]]
    assert ids == [f"btc-sma-{i}" for i in range(19, 9, -1)]
    r = await api.client.get("/api/trades", params={"cursor": "not-an-id"}, headers=h)
    assert r.status_code == 422


async def test_strategies_show_config_and_stats(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    rows = {s["name"]: s for s in (await api.client.get("/api/strategies", headers=h)).json()}
    assert rows["btc-sma"]["algorithm"] == "sma-crossover"
    assert rows["btc-sma"]["enabled"] is True
    assert rows["btc-sma"]["stats"]["trades"] == 30
    assert rows["btc-sma"]["stats"]["phase"] == "Running"


async def test_toggle_flips_and_audits_with_actor(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    r = await api.client.post("/api/strategies/btc-sma/toggle", headers=h)
    assert r.json() == {"name": "btc-sma", "enabled": False}
    assert (await api.desired.get_strategy("btc-sma"))["spec"]["enabled"] is False
    r = await api.client.post("/api/strategies/btc-sma/toggle", json={"enabled": True}, headers=h)
    assert r.json()["enabled"] is True
    r = await api.client.post("/api/strategies/nope/toggle", headers=h)
    assert r.status_code == 404
    audit = (
        await api.client.get("/api/audit", params={"action": "strategy.enabled"}, headers=h)
    ).json()["items"]
    assert [(a["actor"], a["detail"]["enabled"]) for a in audit] == [
        ("api:admin", True),
        ("api:admin", False),
    ]


async def test_emergency_stop_close_all_resume(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    r = await api.client.post("/api/emergency/stop", json={"reason": "drill"}, headers=h)
    assert r.json()["action"] == "stop"
    assert r.json()["by"] == "api:admin"
    assert (await api.redis.hgetall(api.keys.emergency))["action"] == "stop"
    status = (await api.client.get("/api/status", headers=h)).json()
    # no runner has acknowledged the stop yet: stopping, not stopped (issue 17)
    assert status["status"] == "stopping"
    assert {x["emergency_applied"] for x in status["strategies"]} == {False}
    await api.redis.hset(
        api.keys.emergency_acks,
        "btc-sma",
        json.dumps({"action": "stop", "ts_ms": 5, "cancelled": ["a"]}),
    )
    r = await api.client.get("/api/emergency", headers=h)
    assert r.json()["acks"]["btc-sma"] == {"action": "stop", "ts_ms": 5, "cancelled": ["a"]}
    r = await api.client.post("/api/emergency/close-all", headers=h)
    assert r.json()["action"] == "close-all"
    r = await api.client.post("/api/emergency/resume", headers=h)
    assert r.json()["action"] == "none"
    assert (await api.client.get("/api/status", headers=h)).json()["status"] == "running"
    actions = [
        a["action"]
        for a in (
            await api.client.get("/api/audit", params={"actor": "api:admin"}, headers=h)
        ).json()["items"]
    ]
    assert actions[:3] == ["emergency.none", "emergency.close-all", "emergency.stop"]


async def test_settings_masked_validated_and_hot_reloaded(make_api: MakeApi) -> None:
    # TRADING_MODE=live in .env (the runbook's variable) does not make paper strategies
    # live: the settings page says what the strategies trade
    api = await _seeded(make_api, binance_api_key="AKIA-very-secret-key", trading_mode="live")
    h = await api.auth()
    r = await api.client.get("/api/settings", headers=h)
    assert r.json()["runtime"]["tradingMode"] == "paper"
    text = r.text
    assert "AKIA-very-secret-key" not in text and JWT_SECRET not in text
    assert API_PASSWORD not in text
    body = r.json()
    assert body["runtime"]["binanceApiKey"] == MASK
    assert body["runtime"]["jwtSecret"] == MASK
    assert Decimal(str(body["risk"]["stopLossPct"])) == 5
    r = await api.client.put("/api/settings", json={"risk": {"stopLossPct": 150}}, headers=h)
    assert r.status_code == 422
    assert "stopLossPct" in r.text
    r = await api.client.put("/api/settings", json={"risk": {"stopLosPct": 4}}, headers=h)
    assert r.status_code == 422
    assert "stopLosPct" in r.text
    r = await api.client.put(
        "/api/settings", json={"risk": {"stop_loss_pct": 4, "maxConcurrentPositions": 2}}, headers=h
    )
    assert r.status_code == 200
    assert Decimal(str(r.json()["risk"]["stopLossPct"])) == 4
    stored = await api.desired.get_risk_policy("default")
    assert stored["spec"]["maxConcurrentPositions"] == 2
    audit = (await api.client.get("/api/audit", params={"action": "riskpolicy"}, headers=h)).json()[
        "items"
    ]
    assert audit[0]["actor"] == "api:admin"


async def test_analytics_overall_and_per_strategy(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    r = await api.client.get("/api/analytics", headers=h)
    body = r.json()
    assert body["strategies"]["btc-sma"]["metrics"]["trades"] == 30
    assert body["overall"]["metrics"]["trades"] == 42
    assert body["strategies"]["btc-sma"]["metrics"]["win_rate"] == pytest.approx(20 / 30)
    assert len(body["strategies"]["btc-sma"]["equity_curve"]) == 5
    # overall curve is the sum of both strategies' equity at each time
    assert body["overall"]["equity_curve"][-1]["equity"] == "20200"
    # a handful of equity points: the Sharpe ratio is shown but flagged as not judged,
    # with its sample, as GO/NO-GO does
    sma = body["strategies"]["btc-sma"]
    assert sma["metrics"]["sharpe_judged"] is False and sma["metrics"]["returns"] < 30
    # realised P&L (closed trades) and the marked P&L (equity change) are both named
    curve = [Decimal(p["equity"]) for p in sma["equity_curve"]]
    assert Decimal(sma["marked_pnl"]) == curve[-1] - curve[0]
    assert Decimal(body["overall"]["marked_pnl"]) == sum(
        Decimal(b["marked_pnl"]) for b in body["strategies"].values())


async def test_preflight_and_reconciliation(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    assert (await api.client.get("/api/preflight", headers=h)).json()["available"] is False
    await api.redis.set(api.keys.preflight, json.dumps({"ok": True, "checks": []}))
    await api.redis.set(
        api.keys.reconciliation("btc-sma"), json.dumps({"ok": False, "mismatches": [{"x": 1}]})
    )
    p = (await api.client.get("/api/preflight", headers=h)).json()
    assert p["available"] is True and p["report"]["ok"] is True
    rec = (await api.client.get("/api/reconciliation", headers=h)).json()
    assert rec["strategies"]["btc-sma"]["ok"] is False
    assert rec["strategies"]["eth-rsi"] is None


async def test_audit_filters(make_api: MakeApi) -> None:
    api = await _seeded(make_api)
    h = await api.auth()
    await api.client.post("/api/emergency/stop", headers=h)
    r = await api.client.get("/api/audit", params={"actor": "test"}, headers=h)
    assert {a["actor"] for a in r.json()["items"]} == {"test"}
    r = await api.client.get("/api/audit", params={"strategy": "eth-rsi"}, headers=h)
    assert {a["strategy"] for a in r.json()["items"]} == {"eth-rsi"}
    r = await api.client.get("/api/audit", params={"since_ms": 2**50}, headers=h)
    assert r.json()["items"] == []


async def test_security_headers_and_cors(make_api: MakeApi) -> None:
    api = await make_api(cors_origins=["https://dash.example.com"])
    r = await api.client.get("/health")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    ok = await api.client.options(
        "/api/status",
        headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert ok.headers["access-control-allow-origin"] == "https://dash.example.com"
    bad = await api.client.options(
        "/api/status",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in bad.headers


async def test_request_size_limit(make_api: MakeApi) -> None:
    api = await make_api()
    r = await api.client.post(
        "/api/auth/login", content=b"x" * (70 * 1024), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


async def test_unexpected_error_has_no_trace_or_secret(make_api: MakeApi) -> None:
    api = await make_api()

    async def broken() -> list[dict[str, Any]]:
        raise RuntimeError("db password is hunter2")

    api.desired.list_strategies = broken  # type: ignore[method-assign]
    # as a real server sees it: the exception does not propagate out of the app
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app, raise_app_exceptions=False),
        base_url="http://testserver",
    )
    async with client:
        r = await client.get("/api/strategies", headers=await api.auth())
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text


async def test_validation_errors_do_not_echo_input(make_api: MakeApi) -> None:
    api = await make_api()
    r = await api.client.post("/api/auth/login", json={"password": "", "extra": "s3cr3t"})
    assert r.status_code == 422
    assert "s3cr3t" not in r.text


async def test_metrics_endpoint(make_api: MakeApi) -> None:
    api = await make_api()
    await api.client.get("/health")
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert 'kubetrade_api_requests_total{method="GET",route="/health",status="200"}' in r.text


async def test_dashboard_page_served_without_cdn(make_api: MakeApi) -> None:
    api = await make_api()
    r = await api.client.get("/")
    assert r.status_code == 200
    assert "<canvas" in r.text or "<svg" in r.text
    for asset in ("/static/app.js", "/static/chart.js", "/static/dom.js", "/static/style.css"):
        a = await api.client.get(asset)
        assert a.status_code == 200
        assert "https://" not in a.text and "http://" not in a.text
    assert "https://" not in r.text and "http://" not in r.text


async def test_analytics_follow_new_trades_and_a_reset_strategy(make_api: MakeApi) -> None:
    from kubetrade.state.store import Changes, StateStore
    from tests.integration.api._seed import trade

    api = await _seeded(make_api)
    h = await api.auth()

    async def trades_of(name: str) -> int:
        body = (await api.client.get("/api/analytics", headers=h)).json()
        return int(body["strategies"][name]["metrics"]["trades"])

    assert await trades_of("btc-sma") == 30
    store = StateStore(api.redis, api.keys, "btc-sma")
    await store.commit(Changes(closed_trades=[trade("btc-sma", "BTC/USDT", 100)]))
    assert await trades_of("btc-sma") == 31  # only the new entry is read
    await store.reset()
    await store.commit(Changes(closed_trades=[trade("btc-sma", "BTC/USDT", 200)]))
    assert await trades_of("btc-sma") == 1  # a restarted stream is read afresh


async def test_redis_down_is_503_with_a_plain_message() -> None:
    import redis.asyncio as aioredis

    from kubetrade.api.app import create_app
    from kubetrade.domain.clock import SystemClock
    from kubetrade.state.desired import LocalDesiredState
    from kubetrade.state.keys import Keys
    from tests.fixtures.api import api_settings

    dead = aioredis.from_url("redis://127.0.0.1:9/0", decode_responses=True)
    keys = Keys("down")
    app = create_app(
        api_settings(dashboard_password=None),
        dead,
        LocalDesiredState(dead, keys),
        SystemClock(),
        keys,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["redis"] == "unreachable"
        r = await client.get("/api/portfolio")
        assert r.status_code == 503
        assert r.json() == {"detail": "state store (Redis) unavailable"}
    await dead.aclose()


async def test_a_runner_not_heard_of_for_a_minute_is_shown_stale(make_api: MakeApi) -> None:
    """Its last phase is history: a runner that died, froze or was stopped must not
    read as Running on the dashboard (found by a new-user trial: a frozen kubetrade
    local showed Running for 77 s and more)."""
    api = await _seeded(make_api)
    silent_since = int(time.time() * 1000) - 61_000
    await seed_strategy(api.redis, api.keys, "btc-sma", "BTC/USDT", heartbeat_ms=silent_since)
    await seed_strategy(api.redis, api.keys, "eth-rsi", "ETH/USDT", heartbeat_ms=silent_since)
    h = await api.auth()
    rows = {s["name"]: s for s in (await api.client.get("/api/strategies", headers=h)).json()}
    assert rows["btc-sma"]["stats"]["phase"] == "Stale"
    status = (await api.client.get("/api/status", headers=h)).json()
    assert status["status"] == "stale"
    assert {s["name"]: s["phase"] for s in status["strategies"]} == {
        "btc-sma": "Stale", "eth-rsi": "Stale"}
    portfolio = (await api.client.get("/api/portfolio", headers=h)).json()
    assert {s["name"]: s["phase"] for s in portfolio["strategies"]} == {
        "btc-sma": "Stale", "eth-rsi": "Stale"}
    # one beat brings it back
    await seed_strategy(api.redis, api.keys, "btc-sma", "BTC/USDT")
    status = (await api.client.get("/api/status", headers=h)).json()
    assert status["status"] == "running"
