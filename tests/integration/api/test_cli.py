"""`kubetrade api` as an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.api import free_port

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DASHBOARD_PASSWORD", "JWT_SECRET", "KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env.update(REDIS_URL=redis_url, KUBETRADE_REDIS_PREFIX="cli-test", **extra)
    return env


def test_refuses_to_expose_an_unauthenticated_api(redis_url: str) -> None:
    out = subprocess.run(
        [KUBETRADE, "api", "--host", "0.0.0.0", "--port", str(free_port())],
        env=_env(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "DASHBOARD_PASSWORD is not set" in out.stderr
    assert "loopback" in out.stderr


def test_rejects_a_short_jwt_secret(redis_url: str) -> None:
    out = subprocess.run(
        [KUBETRADE, "api", "--port", str(free_port())],
        env=_env(redis_url, DASHBOARD_PASSWORD="pw", JWT_SECRET="short"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "JWT_SECRET" in out.stderr and "32" in out.stderr
    assert "short" not in out.stderr.replace("JWT_SECRET", "")


def test_serves_on_loopback_without_password_and_says_so(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    proc = subprocess.Popen(
        [KUBETRADE, "api", "--port", str(port)],
        env=_env(redis_url),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "kubetrade api did not answer /health"
            time.sleep(0.1)
        assert r.json()["auth_required"] is False
        assert httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200
        text = log.read_text()
        assert "NO authentication" in text and "loopback" in text
        assert "JWT_SECRET is not set" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
