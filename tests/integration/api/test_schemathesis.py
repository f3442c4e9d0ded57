"""schemathesis fuzzes every operation of the OpenAPI document against the real app
(uvicorn on loopback, real Redis, real local desired state): 0 server errors.

The schemathesis CLI runs as a subprocess while the server runs in this test's event
loop, so the app's Redis client stays on its own loop.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.fixtures.api import MakeApi, serve
from tests.integration.api._seed import seed_strategy, strategy_manifest

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


async def _run(url: str, token: str | None, tmp: Path, examples: int) -> tuple[int, str]:
    args = [
        SCHEMATHESIS,
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--seed",
        "20261127",
        "--workers",
        "1",
        "--report-dir",
        str(tmp),
        "--no-color",
        # logout would revoke the very token the run authenticates with
        "--exclude-path",
        "/api/auth/logout",
    ]
    if token:
        args += ["--header", f"Authorization: Bearer {token}"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    return int(proc.returncode or 0), out.decode(errors="replace")


async def test_openapi_fuzzing_finds_no_server_errors(make_api: MakeApi, tmp_path: Path) -> None:
    api = await make_api(login_max_failures=1000)
    await api.desired.put_strategy(strategy_manifest("btc-sma"), "test")
    await seed_strategy(api.redis, api.keys, "btc-sma", n_trades=20)
    async with serve(api.app) as url:
        token = await api.token()
        schema = (await api.client.get("/openapi.json")).json()
        # the document covers the runbook's table
        for path in (
            "/health",
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
        ):
            assert path in schema["paths"], path
        assert set(schema["paths"]["/api/settings"]) == {"get", "put"}
        rc, out = await _run(url, token, tmp_path, 40)
        assert rc == 0, out[-6000:]
        assert "Authentication failed" not in out, out[-6000:]  # the token did work
        assert " 0 failed" in out or "failed" not in out.split("Test cases:")[-1]
        rc, out = await _run(url, None, tmp_path, 15)
        assert rc == 0, out[-6000:]
