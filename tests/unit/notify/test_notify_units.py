"""Pure parts of the notifier: grouping, pacing, settings, redaction, refusal-audit limit."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from telegram import Update

from kubetrade.domain.clock import ManualClock
from kubetrade.notify.bot import NotifyBot, RejectAuditLimiter
from kubetrade.notify.dispatcher import RateLimiter, telegram_limits
from kubetrade.notify.redact import install_secret_redaction
from kubetrade.notify.settings import NotifySettings, telegram_configured
from kubetrade.notify.text import MAX_MESSAGE, group_alerts
from kubetrade.state.alerts import Alert, AlertKind, Severity

TOKEN = "987654:unit-test-SECRET-part_xyz"


def alert(n: int, severity: Severity = Severity.INFO, text: str = "") -> Alert:
    return Alert(AlertKind.TRADE_CLOSED, severity, f"t{n}", text or f"closed {n}",
                 1_700_000_000_000 + n, "s", id=f"1-{n}")


def test_one_alert_is_one_message_with_its_id() -> None:
    [out] = group_alerts([alert(1, Severity.CRITICAL)])
    assert out.alert_ids == ("1-1",)
    assert out.text.startswith("🚨 t1\nclosed 1\n[s] 2023-11-14")


def test_a_burst_is_grouped_critical_first_within_the_size_limit() -> None:
    alerts = [alert(n, Severity.CRITICAL if n == 150 else Severity.INFO, "x" * 120)
              for n in range(300)]
    out = group_alerts(alerts)
    assert 2 <= len(out) < 300
    assert all(len(o.text) <= MAX_MESSAGE for o in out)
    ids = [i for o in out for i in o.alert_ids]
    assert sorted(ids) == sorted(a.id for a in alerts)  # each alert exactly once
    assert out[0].alert_ids[0] == "1-150"
    assert out[0].text.startswith(f"{len(out[0].alert_ids)} alerts (1 critical, ")
    assert f"part 1/{len(out)}" in out[0].text


def test_a_huge_alert_is_clipped_not_refused() -> None:
    [out] = group_alerts([alert(1, text="y" * 10_000)])
    assert len(out.text) <= MAX_MESSAGE


def test_repeats_are_flagged() -> None:
    [out] = group_alerts([alert(1)], repeated=["1-1"])
    assert "may have seen it already" in out.text


def test_rate_limiter_holds_20_per_minute() -> None:
    clock = ManualClock(0)
    limiter = RateLimiter(clock, telegram_limits())
    for _ in range(20):
        assert limiter.delay() == 0
        limiter.record()
        clock.advance(0.1)
    # the 21st must wait until the first leaves the 60 s window
    assert limiter.delay() == pytest.approx(60 - 2.0)
    clock.advance(58)
    assert limiter.delay() == 0


def test_rate_limiter_holds_30_per_second_overall() -> None:
    clock = ManualClock(0)
    limiter = RateLimiter(clock, ((1000, 60.0), (30, 1.0)))
    for _ in range(30):
        limiter.record()
    assert limiter.delay() == pytest.approx(1.0)


async def test_rate_limiter_acquire_sleeps_on_the_clock() -> None:
    clock = ManualClock(0)
    limiter = RateLimiter(clock, ((2, 10.0),))
    for _ in range(3):
        await limiter.acquire()
    assert clock.now_ms() == 10_000


def test_settings_parse_ids_and_name_bad_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    s = NotifySettings(telegram_bot_token=TOKEN, telegram_chat_id="-100123",
                       telegram_allowed_user_ids="1, 2;3", telegram_api_base_url="http://h:1/")
    assert s.telegram_allowed_user_ids == [1, 2, 3]
    assert s.telegram_chat_id == -100123
    assert s.bot_base_url == "http://h:1/bot"
    assert TOKEN not in repr(s) and TOKEN not in str(s.model_dump())
    with pytest.raises(ValidationError) as err:
        NotifySettings(telegram_bot_token=TOKEN, telegram_chat_id=1,
                       telegram_allowed_user_ids="12,abc")
    assert "TELEGRAM_ALLOWED_USER_IDS" in str(err.value)
    with pytest.raises(ValidationError) as err:
        NotifySettings(telegram_bot_token="no colon here", telegram_chat_id=1)
    assert "TELEGRAM_BOT_TOKEN" in str(err.value) and "no colon here" not in str(err.value)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "42")
    monkeypatch.setenv("TELEGRAM_ALLOWED_USER_IDS", "7")
    settings: Any = NotifySettings
    assert settings().telegram_allowed_user_ids == [7]
    assert telegram_configured({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42"})
    assert not telegram_configured({"TELEGRAM_BOT_TOKEN": TOKEN})


def test_redaction_covers_messages_args_and_exceptions() -> None:
    install_secret_redaction(TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("some.library.child")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("url %s", f"https://api.telegram.org/bot{TOKEN}/getMe")
        logger.info(f"inline https://x/bot{TOKEN}/sendMessage")
        try:
            raise RuntimeError(f"failed at /bot{TOKEN}/x")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "unit-test-SECRET-part_xyz" not in text
    assert text.count("<redacted>") >= 3


def test_refusal_audits_are_limited_per_minute_and_counted() -> None:
    clock = ManualClock(60_000 * 100)
    limiter = RejectAuditLimiter(clock, limit=3)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
    assert limiter.take_suppressed() == 2
    clock.advance(60)
    assert limiter.allow()


# -- properties (hypothesis) --------------------------------------------------------


_CHAT, _USERS = -100777, (111, 222)


def _gate_bot() -> NotifyBot:
    cfg = NotifySettings(telegram_bot_token=TOKEN, telegram_chat_id=_CHAT,
                         telegram_allowed_user_ids="111,222")
    nothing: Any = None  # the gate decision needs neither Redis nor desired state
    return NotifyBot(cfg, nothing, nothing, nothing)


_ids = st.one_of(st.sampled_from([_CHAT, *_USERS, 0, -1]), st.integers(-10**13, 10**13))


@settings(max_examples=500, deadline=None)
@given(chat=_ids, user=st.one_of(st.none(), _ids),
       kind=st.sampled_from(["message", "edited_message", "callback_query", "channel_post"]))
def test_gate_admits_exactly_the_configured_chat_and_users(
    chat: int, user: int | None, kind: str
) -> None:
    bot = _gate_bot()
    message: dict[str, Any] = {
        "message_id": 1, "date": 1_700_000_000, "text": "/stop",
        "chat": {"id": chat, "type": "supergroup" if chat < 0 else "private"},
    }
    if user is not None and kind != "channel_post":
        message["from"] = {"id": user, "is_bot": False, "first_name": "u"}
    if kind == "callback_query":
        raw: dict[str, Any] = {"update_id": 1, "callback_query": {
            "id": "1", "chat_instance": "c", "data": "x", "message": message,
            "from": {"id": user if user is not None else 5, "is_bot": False, "first_name": "u"},
        }}
        user = user if user is not None else 5
    else:
        if kind == "channel_post":
            message["chat"]["type"] = "channel"
            user = None
        raw = {"update_id": 1, kind: message}
    update = Update.de_json(raw, None)
    expected = chat == _CHAT and user in _USERS
    assert bot.allowed(update) is expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Severity)), st.text(max_size=600)),
                min_size=1, max_size=120))
def test_grouping_keeps_every_alert_once_within_the_limit(
    items: list[tuple[Severity, str]]
) -> None:
    alerts = [Alert(AlertKind.TRADE_OPENED, sev, f"t{n}", text or "-", n, id=f"1-{n}")
              for n, (sev, text) in enumerate(items)]
    out = group_alerts(alerts)
    ids = [i for o in out for i in o.alert_ids]
    assert sorted(ids) == sorted(a.id for a in alerts)
    assert all(0 < len(o.text) <= MAX_MESSAGE for o in out)
    if len(alerts) > 1:
        assert len(out) <= 1 + len(alerts) * 410 // 3900
