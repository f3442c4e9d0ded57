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


@pytest.mark.timeout(120)
def test_an_unreachable_exchange_at_start_is_retried_without_a_traceback(
    redis_url: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    strategy = Path(__file__).parents[3] / "examples" / "strategies" / "btc-sma.yaml"
    env = {**os.environ, "REDIS_URL": redis_url,
           "KUBETRADE_REDIS_PREFIX": f"off-{uuid.uuid4().hex[:8]}",
           "KUBETRADE_MARKET_DATA": "exchange",
           "KUBETRADE_EXCHANGE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([KUBETRADE, "runner", "--strategy-file", str(strategy)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: log.read_text().count("runner.exchange_unreachable") >= 2
                  or proc.poll() is not None, 90, "two start attempts")
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    assert "runner.stopped" in text and "Unclosed client session" not in text, text


@pytest.mark.timeout(120)
def test_an_unreachable_redis_at_start_is_retried_without_a_traceback(tmp_path: Path) -> None:
    """The same for Redis (a pod starting before the chart's Redis is Ready; REDIS_URL
    wrong): one runner.redis_unreachable line per attempt, never a 79-line traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    strategy = Path(__file__).parents[3] / "examples" / "strategies" / "btc-sma.yaml"
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "KUBETRADE_MARKET_DATA": "replay"}
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([KUBETRADE, "runner", "--strategy-file", str(strategy)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: log.read_text().count("runner.redis_unreachable") >= 2
                  or proc.poll() is not None, 90, "two attempts to reach Redis")
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text
