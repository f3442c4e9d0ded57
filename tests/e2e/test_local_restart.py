"""Issue 17 item 1: without REDIS_URL `kubetrade local` keeps its state in a real Redis
server of its own, in --data-dir, so a SIGKILL and a restart on the same directory lose
nothing: trades, a disabled strategy, the emergency stop, a changed setting and a
revoked token are all still there; and refresh works (it needs Lua)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.local_kit import JWT_SECRET, PASSWORD, base_env, local_procs, start
from tests.e2e.test_local import EXAMPLE_STRATEGIES, wait_for

__all__ = ["local_procs"]  # the fixture, imported for pytest


def _all_acked(local: Any, token: str, action: str) -> bool:
    body = local.get("/api/emergency", token).json()
    return len([a for a in body["acks"].values() if a["action"] == action]) == EXAMPLE_STRATEGIES


def test_sigkill_and_restart_on_the_embedded_default_keep_state(
    tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    data = tmp_path / "data"
    env = base_env(DASHBOARD_PASSWORD=PASSWORD, JWT_SECRET=JWT_SECRET)
    log = tmp_path / "local.log"
    local = start(local_procs, log, env, "--data-dir", str(data))
    health = local.wait_healthy()
    assert str(data) in health["state"]
    first = local.login()
    token = first["access_token"]
    # refresh on the embedded default (fakeredis had no Lua: 503)
    refreshed = local.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    wait_for(lambda: local.get("/api/trades", token).json()["items"], 120, "a paper trade")
    # what the user changes
    r = local.post("/api/strategies/btc-sma/toggle", token, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    r = local.post("/api/emergency/stop", token, json={"reason": "before the kill"})
    assert r.status_code == 200, r.text
    wait_for(lambda: _all_acked(local, token, "stop"), 30, "every runner acks the stop")
    r = httpx_put(local, "/api/settings", token, {"risk": {"stopLossPct": 3.5}})
    assert r.status_code == 200, r.text
    revoked = local.login()["access_token"]
    assert local.post("/api/auth/logout", revoked).status_code in (200, 204)
    assert local.get("/api/status", revoked).status_code == 401
    trades_before = {t["id"] for t in local.get("/api/trades?limit=500", token).json()["items"]}

    local.proc.send_signal(signal.SIGKILL)
    local.proc.wait(10)
    again = start(local_procs, log, env, "--data-dir", str(data))
    again.wait_healthy()

    assert again.get("/api/status", revoked).status_code == 401, "a logged-out token works"
    trades_after = {t["id"] for t in again.get("/api/trades?limit=500", token).json()["items"]}
    assert trades_before and trades_before <= trades_after
    strategies = {s["name"]: s for s in again.get("/api/strategies", token).json()}
    assert strategies["btc-sma"]["enabled"] is False
    assert float(again.get("/api/settings", token).json()["risk"]["stopLossPct"]) == 3.5
    assert again.get("/api/emergency", token).json()["action"] == "stop"
    wait_for(lambda: _all_acked(again, token, "stop"), 30, "runners apply the kept stop")


def httpx_put(local: Any, path: str, token: str, body: dict[str, Any]) -> Any:
    import httpx

    return httpx.put(local.url + path, json=body, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
