"""Case login-throttle-xff (tests/data/cases/login-throttle-xff, issue 17 item 5): proxy
headers are trusted only from --forwarded-allow-ips (default none), in `kubetrade local`
and `kubetrade api` alike, so a new X-Forwarded-For per request does not escape the
login throttle: after 5 failures, 429 whatever headers the client sends, and the right
password is refused while the client is over its limit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubetrade.cli._http import forwarded_allow_ips, uvicorn_config
from tests.e2e.local_kit import JWT_SECRET, PASSWORD, LocalProc, base_env, local_procs, start

__all__ = ["local_procs"]  # the fixture, imported for pytest

CASE = Path(__file__).resolve().parents[1] / "data" / "cases" / "login-throttle-xff"


def _login(local: LocalProc, password: str, xff: str | None = None) -> int:
    headers = {"X-Forwarded-For": xff} if xff else {}
    return local.post("/api/auth/login", json={"username": "admin", "password": password},
                      headers=headers).status_code


def test_case_xff_does_not_escape_the_login_throttle(
    tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    assert (CASE / "repro.sh").is_file()
    env = base_env(DASHBOARD_PASSWORD=PASSWORD, JWT_SECRET=JWT_SECRET)
    local = start(local_procs, tmp_path / "local.log", env, "--data-dir", str(tmp_path / "d"))
    local.wait_healthy()
    # the case's expected values: 401 x5 then 429, whatever the header says
    assert [_login(local, f"guess{i}") for i in range(7)] == [401] * 5 + [429] * 2
    assert [_login(local, f"guess{i}", f"10.9.8.{i}") for i in range(12)] == [429] * 12
    assert _login(local, PASSWORD, "10.9.8.200") == 429


def test_a_configured_proxy_is_trusted(
    tmp_path: Path, local_procs: list[subprocess.Popen[bytes]]
) -> None:
    """Behind a proxy at 127.0.0.1 (--forwarded-allow-ips) each client has its own limit."""
    env = base_env(DASHBOARD_PASSWORD=PASSWORD, JWT_SECRET=JWT_SECRET)
    local = start(local_procs, tmp_path / "local.log", env, "--data-dir", str(tmp_path / "d"),
                  "--forwarded-allow-ips", "127.0.0.1")
    local.wait_healthy()
    assert [_login(local, f"g{i}", "10.9.8.1") for i in range(6)] == [401] * 5 + [429]
    assert _login(local, PASSWORD, "10.9.8.2") == 200  # another client behind the proxy


def test_uvicorn_settings_trust_no_proxy_by_default() -> None:
    config = uvicorn_config(object(), host="127.0.0.1", port=1, forwarded="", graceful_s=1)
    assert config.proxy_headers is False
    config = uvicorn_config(object(), host="127.0.0.1", port=1,
                            forwarded=forwarded_allow_ips("10.0.0.5, 10.1.0.0/16"), graceful_s=1)
    assert config.proxy_headers is True and config.forwarded_allow_ips == "10.0.0.5,10.1.0.0/16"


def test_a_bad_proxy_address_is_a_usage_error() -> None:
    from kubetrade.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["api", "--forwarded-allow-ips", "proxy.example"])
    assert exit_.value.code == 2
