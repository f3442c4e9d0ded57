"""`kubetrade runner` started while the exchange does not answer (a pod on a node whose
egress is down, a laptop offline): it waits and retries with one log line per attempt,
never a traceback, and a SIGTERM during the wait exits at once and cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.runner.test_sigkill_live import _wait

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))


STRATEGY = Path(__file__).parents[3] / "examples" / "strategies" / "btc-sma.yaml"


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _waits_then_stops(env: dict[str, str], event: str, log: Path) -> str:
    """Start `kubetrade runner`, wait for two ``event`` lines (it is still running, not
    crashed), SIGTERM it; its log, after asserting it exited 0 without a traceback."""
    with log.open("wb") as out:
        proc = subprocess.Popen([KUBETRADE, "runner", "--strategy-file", str(STRATEGY)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: log.read_text().count(event) >= 2 or proc.poll() is not None,
                  90, f"two {event} lines")
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text
    return text


@pytest.mark.timeout(120)
def test_an_unreachable_exchange_at_start_is_retried_without_a_traceback(
    redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url,
           "KUBETRADE_REDIS_PREFIX": f"off-{uuid.uuid4().hex[:8]}",
           "KUBETRADE_MARKET_DATA": "exchange",
           "KUBETRADE_EXCHANGE_URL": f"http://127.0.0.1:{_closed_port()}"}
    text = _waits_then_stops(env, "runner.exchange_unreachable", tmp_path / "runner.log")
    assert "runner.stopped" in text and "Unclosed client session" not in text, text


@pytest.mark.timeout(120)
def test_an_unreachable_redis_at_start_is_retried_without_a_traceback(tmp_path: Path) -> None:
    """The same for Redis (a pod starting before the chart's Redis is Ready; REDIS_URL
    wrong): one runner.redis_unreachable line per attempt, never a 79-line traceback."""
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
           "KUBETRADE_MARKET_DATA": "replay"}
    _waits_then_stops(env, "runner.redis_unreachable", tmp_path / "runner.log")
