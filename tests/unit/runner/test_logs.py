"""No secret ever reaches a log line, whichever way it gets there."""

from __future__ import annotations

import io
import json
import logging

import pytest

from kubetrade.logs import MASK, configure_logging, get_logger, redactor

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_SECRET_KEY", SECRET)
    stream = io.StringIO()
    configure_logging("INFO", stream)
    return stream


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_fields_values_and_shapes_are_masked(log_lines: io.StringIO) -> None:
    log = get_logger("test")
    log.info("config", api_key=API_KEY, settings={"secretKey": SECRET, "symbols": ["BTC/USDT"]})
    log.warning(
        "request failed",
        url=f"https://api.binance.com/api/v3/order?symbol=BTCUSDT&signature=abc123def&apiKey={API_KEY}",
        error=f"binance {{'code': -2015, 'msg': 'Invalid API-key {API_KEY}'}}",
    )
    log.info("telegram", url=f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage")
    log.info("header", headers={"X-MBX-APIKEY": API_KEY, "Authorization": "Bearer eyJhbGciOi.x.y"})
    try:
        raise RuntimeError(f"boom with secret {SECRET}")
    except RuntimeError:
        log.exception("crash")
    logging.getLogger("uvicorn.error").error("stdlib says %s", SECRET)
    text = log_lines.getvalue()
    for secret in (API_KEY, SECRET, BOT_TOKEN, "abc123def", "eyJhbGciOi"):
        assert secret not in text, secret
    records = _records(log_lines)
    assert records[0]["api_key"] == MASK
    assert records[0]["settings"] == {"secretKey": MASK, "symbols": ["BTC/USDT"]}
    assert "symbol=BTCUSDT" in str(records[1]["url"])  # non-secret parts are kept
    assert records[-1]["logger"] == "uvicorn.error"
    assert records[0]["component"] == "test"
    assert all("timestamp" in r and "level" in r for r in records)


def test_registered_secret_is_masked_anywhere(log_lines: io.StringIO) -> None:
    redactor().add_secret("hunter2-very-secret")
    get_logger("test").info("note", text="the password is hunter2-very-secret, ok")
    assert "hunter2-very-secret" not in log_lines.getvalue()
    assert _records(log_lines)[0]["text"] == f"the password is {MASK}, ok"
