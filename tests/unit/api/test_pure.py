"""Pure parts of the API: password hashing, settings rules, bind address, curve maths,
per-client queue overflow."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from kubetrade.api.analytics import combine_curves as _combine_curves
from kubetrade.api.analytics import metrics_out as _metrics_out
from kubetrade.api.auth import PasswordCheck, hash_password, verify_password
from kubetrade.api.settings import MASK, ApiSettings
from kubetrade.api.ws import RESYNC, Client
from kubetrade.cli.api import choose_host
from kubetrade.domain.metrics import PerformanceMetrics
from kubetrade.state.reader import EquityPoint, thin, valid_cursor


def test_password_hash_roundtrip_and_salt() -> None:
    h1, h2 = hash_password("s3cret"), hash_password("s3cret")
    assert h1 != h2  # salted
    assert h1.startswith("scrypt$") and "s3cret" not in h1
    assert verify_password("s3cret", h1) and verify_password("s3cret", h2)
    assert not verify_password("s3cret ", h1)
    assert not verify_password("s3cret", "garbage")
    assert not verify_password("s3cret", "pbkdf2$1$2$3$YQ==$YQ==")


def test_password_check_needs_both_username_and_password() -> None:
    check = PasswordCheck("admin", hash_password("pw"))
    assert check.check("admin", "pw")
    assert not check.check("root", "pw")
    assert not check.check("admin", "pw2")


def test_settings_rules_name_the_variable() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be at least 32"):
        ApiSettings(jwt_secret="short")
    with pytest.raises(ValidationError, match="not an exact origin"):
        ApiSettings(cors_origins=["*"])
    with pytest.raises(ValidationError, match="must not have a path"):
        ApiSettings(cors_origins=["https://a.example/x"])
    assert ApiSettings(dashboard_password="").auth_enabled is False
    assert ApiSettings(dashboard_password="x").auth_enabled is True


def test_masked_runtime_never_holds_secrets() -> None:
    settings = ApiSettings(
        dashboard_password="pw-123456",
        jwt_secret="j" * 40,
        binance_api_key="key-abcdef",
        binance_secret_key="sec-abcdef",
        telegram_bot_token="123:tok",
    )
    runtime = settings.masked_runtime()
    text = json.dumps(runtime)
    for secret in ("pw-123456", "j" * 40, "key-abcdef", "sec-abcdef", "123:tok"):
        assert secret not in text
    assert runtime["binanceApiKey"] == MASK and runtime["telegramBotToken"] == MASK
    assert "pw-123456" not in repr(settings)


def test_bind_address_rules() -> None:
    assert choose_host(None, auth_enabled=False) == "127.0.0.1"
    assert choose_host(None, auth_enabled=True) == "0.0.0.0"
    assert choose_host("::1", auth_enabled=False) == "::1"
    assert choose_host("localhost", auth_enabled=False) == "localhost"
    with pytest.raises(ValueError, match="DASHBOARD_PASSWORD is not set"):
        choose_host("0.0.0.0", auth_enabled=False)
    with pytest.raises(ValueError, match="loopback"):
        choose_host("192.168.1.5", auth_enabled=False)
    assert choose_host("192.168.1.5", auth_enabled=True) == "192.168.1.5"


def test_cursor_validation() -> None:
    assert valid_cursor("1700000000000-0")
    assert valid_cursor(f"{2**64 - 1}-{2**64 - 1}")
    assert not valid_cursor(f"{2**64}-0")
    assert not valid_cursor("abc") and not valid_cursor("1-")


def test_thin_keeps_last_point_and_bound() -> None:
    points = [EquityPoint(i, Decimal(i)) for i in range(1000)]
    out = thin(points, 100)
    assert len(out) <= 100 and out[-1] == points[-1] and out[0] == points[0]
    assert thin(points[:5], 100) == points[:5]


def test_combined_curve_sums_latest_equity_of_each_strategy() -> None:
    a = [EquityPoint(1, Decimal(100)), EquityPoint(3, Decimal(110))]
    b = [EquityPoint(2, Decimal(50)), EquityPoint(3, Decimal(40))]
    out = _combine_curves([a, b])
    assert [(p.ts_ms, p.equity) for p in out] == [
        (1, Decimal(100)),
        (2, Decimal(150)),
        (3, Decimal(150)),
    ]


def test_metrics_without_losses_serialise_as_null_profit_factor() -> None:
    m = PerformanceMetrics(
        trades=2,
        wins=2,
        losses=0,
        win_rate=1.0,
        sharpe=1.2,
        max_drawdown=0.0,
        total_return=0.01,
        profit_factor=None,
        expectancy=Decimal("1.5"),
        gross_profit=Decimal(3),
        gross_loss=Decimal(0),
        net_pnl=Decimal(3),
        periods_per_year=525600.0,
    )
    out = _metrics_out(m)
    assert out.profit_factor is None and out.expectancy == 1.5 and out.trades == 2
    inf = dataclasses.replace(m, sharpe=float("inf"), profit_factor=float("nan"))
    assert _metrics_out(inf).sharpe is None and _metrics_out(inf).profit_factor is None


async def test_overflowing_client_queue_becomes_one_resync() -> None:
    ws: Any = None
    client = Client(ws, queue_size=4)
    assert all(client.offer(f"m{i}") for i in range(4))
    assert client.offer("m4") is False  # overflow: backlog replaced by a resync
    assert client.queue.qsize() == 1 and client.queue.get_nowait() == RESYNC
    assert client.offer("m5") is True
    assert client.queue.get_nowait() == "m5"
    assert client.resyncs == 1


def test_tokens_in_logged_urls_are_redacted() -> None:
    import logging

    from kubetrade.api.redact import RedactTokens

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        "x",
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/api/ws?token=eyJhbGciOi.abc.def&x=1"),
        None,
    )
    RedactTokens().filter(record)
    text = record.getMessage()
    assert "eyJhbGciOi" not in text and "token=[redacted]&x=1" in text
