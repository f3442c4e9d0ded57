"""Starting `kubetrade local` as a subprocess with chosen arguments and environment, for
the tests of issue 17 (restart on the embedded Redis, proxies, bad settings, outages)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_local import KUBETRADE, REPO, _free_port, wait_for

STRATEGIES = REPO / "examples" / "strategies"
PASSWORD = "correct-horse-battery-staple"
JWT_SECRET = "j" * 48


class LocalProc:
    """One `kubetrade local` process: its port, log file and a client on its API."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=10, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return httpx.post(self.url + path, headers=headers, timeout=10, **kw)

    def wait_healthy(self, timeout: float = 60) -> dict[str, Any]:
        def check() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError(f"kubetrade local exited ({self.proc.returncode}): "
                                     f"{self.log.read_text()[-2000:]}")
            r = httpx.get(self.url + "/health", timeout=2)
            return r.json() if r.status_code == 200 else None
        return wait_for(check, timeout, "/health")  # type: ignore[return-value]

    def login(self) -> dict[str, Any]:
        r = self.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without the user's Redis, market data or Telegram."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "KUBETRADE_MARKET_DATA", "TELEGRAM_BOT_TOKEN",
                        "DASHBOARD_PASSWORD", "JWT_SECRET")}
    env.update(PYTHONUNBUFFERED="1", KUBETRADE_REPLAY_INTERVAL="0.02")
    env.update(extra)
    return env


@pytest.fixture
def local_procs(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by :func:`start`; those still running are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start(procs: list[subprocess.Popen[bytes]], log: Path, env: dict[str, str],
          *args: str, port: int | None = None) -> LocalProc:
    """`kubetrade local --market-data replay:bundled` with ``args``, logging to ``log``;
    its ``--data-dir`` beside ``log`` unless ``args`` name one (never the repository's
    ./data: a halt kept there would outlive the test)."""
    port = port or _free_port()
    if "--data-dir" not in args:
        args = (*args, "--data-dir", str(log.parent / "data"))
    proc = subprocess.Popen(
        [KUBETRADE, "local", "--port", str(port), "--market-data", "replay:bundled",
         "--strategies", str(STRATEGIES), *args],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    return LocalProc(proc, port, log)
