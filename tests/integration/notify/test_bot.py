"""The runbook's Telegram commands, end to end: fake Telegram -> python-telegram-bot ->
DesiredState -> Redis (emergency hash, emergency channel, audit log)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis

from kubetrade.domain.models import Position, to_dict
from kubetrade.state.audit import AuditEntry
from tests.fakes.telegram import FakeTelegram
from tests.integration.notify.conftest import (
    DEPUTY,
    GROUP,
    KEYS,
    OWNER,
    STRANGER,
    StartNotifier,
    WallManualClock,
)


async def audit_entries(redis: aioredis.Redis) -> list[AuditEntry]:
    r: Any = redis
    return [AuditEntry.from_stream(i, f) for i, f in await r.xrange(KEYS.audit)]


async def command(fake: FakeTelegram, text: str, user: int = OWNER, chat: int = GROUP) -> Any:
    """Send a command and return the bot's first reply to it."""
    before = len(fake.messages)
    await fake.deliver_command(text, chat, user)
    return await fake.wait_for_message(lambda m: m.chat_id == chat, after=before)


async def test_stop_then_resume_change_the_emergency_state_for_runners(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(KEYS.emergency_channel)
    await pubsub.get_message(timeout=1)  # subscribe confirmation

    reply = await command(fake_telegram, "/stop")
    assert "STOP" in reply.text and "telegram:111" in reply.text
    state = await redis_client.hgetall(KEYS.emergency)
    assert state["action"] == "stop"
    assert state["by"] == f"telegram:{OWNER}"
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert msg is not None and json.loads(msg["data"])["action"] == "stop"

    reply = await command(fake_telegram, "/resume", user=DEPUTY)
    assert "resumed" in reply.text
    assert (await redis_client.hgetall(KEYS.emergency))["action"] == "none"
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert msg is not None and json.loads(msg["data"])["action"] == "none"
    await pubsub.aclose()  # type: ignore[no-untyped-call]

    audit = await audit_entries(redis_client)
    commands = [(e.actor, (e.detail or {})["command"])
                for e in audit if e.action == "telegram.command"]
    assert commands == [(f"telegram:{OWNER}", "stop"), (f"telegram:{DEPUTY}", "resume")]
    changes = [(e.actor, e.action) for e in audit if e.action.startswith("emergency.")]
    assert changes == [(f"telegram:{OWNER}", "emergency.stop"),
                       (f"telegram:{DEPUTY}", "emergency.none")]


async def test_stop_reports_when_runners_acknowledge(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    await redis_client.sadd(KEYS.strategies, "btc-sma")
    before = len(fake_telegram.messages)
    await command(fake_telegram, "/stop")
    since = int((await redis_client.hgetall(KEYS.emergency))["since_ms"])
    # what a runner writes once it halted and cancelled its orders (RUNNER's contract)
    await redis_client.hset(
        KEYS.emergency_acks, "btc-sma",
        json.dumps({"action": "stop", "ts_ms": since + 5, "cancelled": ["kt-1", "kt-2"]}),
    )
    confirmed = await fake_telegram.wait_for_message(
        lambda m: "confirmed stop" in m.text, after=before
    )
    assert "1 runner(s) confirmed stop (2 orders cancelled)" in confirmed.text


async def test_closeall_acts_only_after_the_requester_confirms(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    ask = await command(fake_telegram, "/closeall")
    assert "Close ALL" in ask.text
    assert [b["text"] for b in ask.buttons] == ["Confirm: close all", "Cancel"]
    assert (await redis_client.hgetall(KEYS.emergency)) == {}  # nothing yet

    # Cancel: nothing happens
    cancel = ask.buttons[1]["callback_data"]
    await fake_telegram.press_button(ask, cancel, user_id=OWNER)
    await fake_telegram.wait_for(lambda: ask.text.startswith("Cancelled"))
    assert (await redis_client.hgetall(KEYS.emergency)) == {}

    # a second request; another allowed user cannot confirm it for the requester
    ask = await command(fake_telegram, "/closeall")
    confirm = ask.buttons[0]["callback_data"]
    answers = len(fake_telegram.callback_answers)
    await fake_telegram.press_button(ask, confirm, user_id=DEPUTY)
    await fake_telegram.wait_for(lambda: len(fake_telegram.callback_answers) > answers)
    assert "Only the user" in fake_telegram.callback_answers[-1]["text"]
    assert (await redis_client.hgetall(KEYS.emergency)) == {}

    await fake_telegram.press_button(ask, confirm, user_id=OWNER)
    await fake_telegram.wait_for(lambda: "CLOSE-ALL engaged" in ask.text)
    state = await redis_client.hgetall(KEYS.emergency)
    assert state["action"] == "close-all" and state["by"] == f"telegram:{OWNER}"

    # pressing the same button again does nothing more: the confirmation is spent
    await fake_telegram.press_button(ask, confirm, user_id=OWNER)
    await fake_telegram.wait_for(lambda: ask.text.startswith("Expired"))
    audit = [e.action for e in await audit_entries(redis_client)]
    assert audit.count("emergency.close-all") == 1
    assert "telegram.closeall.cancelled" in audit
    assert "telegram.closeall.refused" in audit


async def test_closeall_confirmation_expires(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    clock = WallManualClock()
    await start_notifier(clock=clock, telegram_confirm_seconds=30)
    ask = await command(fake_telegram, "/closeall")
    clock.advance(31)
    await fake_telegram.press_button(ask, ask.buttons[0]["callback_data"], user_id=OWNER)
    await fake_telegram.wait_for(lambda: ask.text.startswith("Expired"))
    assert (await redis_client.hgetall(KEYS.emergency)) == {}


async def test_status_pnl_positions_show_runner_state(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await redis_client.sadd(KEYS.strategies, "btc-sma")
    await redis_client.hset(KEYS.summary("btc-sma"), mapping={
        "phase": "Running", "equity": "10123.45", "pnl": "123.45", "trades": "7",
        "win_rate": "0.57", "open_positions": "1", "halted_reason": "",
    })
    position = Position("btc-sma", "BTC/USDT", Decimal("0.015"), Decimal("61000.5"),
                        1_700_000_000_000)
    await redis_client.hset(KEYS.positions("btc-sma"), "BTC/USDT", json.dumps(to_dict(position)))
    await start_notifier()

    status = await command(fake_telegram, "/status")
    assert "Emergency: none" in status.text
    assert "[btc-sma] Running, equity 10,123.45, P&L +123.45" in status.text
    assert "BTC/USDT qty 0.015 @ 61,000.50" in status.text

    positions = await command(fake_telegram, "/positions")
    assert positions.text == "[btc-sma] BTC/USDT qty 0.015 @ 61,000.50"
    pnl = await command(fake_telegram, "/pnl")
    assert "[btc-sma] P&L +123.45, equity 10,123.45, trades 7" in pnl.text
    # in a group, commands are often addressed to the bot by name
    addressed = await command(fake_telegram, f"/pnl@{fake_telegram.bot_username}")
    assert addressed.text == pnl.text
    help_ = await command(fake_telegram, "/help")
    for name in ("/stop", "/closeall", "/resume", "/status", "/pnl", "/positions"):
        assert name in help_.text
    # the command menu was registered with Telegram
    assert {c["command"] for c in fake_telegram.commands} >= {"stop", "closeall", "resume",
                                                              "status"}

    await command(fake_telegram, "/stop")
    status = await command(fake_telegram, "/status")
    assert "Emergency: STOP" in status.text and "Halt confirmed by: no runner yet" in status.text


async def test_a_command_sent_while_the_bot_was_away_is_not_executed(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    notifier = await start_notifier()
    before = len(fake_telegram.messages)
    await fake_telegram.deliver_command("/resume", GROUP, OWNER, date=int(time.time()) - 600)
    reply = await fake_telegram.wait_for_message(lambda m: m.chat_id == GROUP, after=before)
    assert reply.text.startswith("Ignored /resume")
    assert (await redis_client.hgetall(KEYS.emergency)) == {}
    assert notifier.bot.handled["resume"] == 0


async def test_strangers_cannot_command_and_are_audited(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    notifier = await start_notifier()
    await fake_telegram.deliver_command("/stop", GROUP, STRANGER)  # in the group, not allowed
    await fake_telegram.deliver_command("/stop", 4242, 4242)  # a private chat with a stranger
    await fake_telegram.deliver_command("/stop", 5555, OWNER)  # the owner, from another chat
    reply = await command(fake_telegram, "/help")  # barrier: updates run in order
    assert reply.text.startswith("kubetrade bot")
    assert notifier.bot.handled == {"help": 1}
    assert notifier.bot.rejected == 3
    assert (await redis_client.hgetall(KEYS.emergency)) == {}
    assert [m.chat_id for m in fake_telegram.messages] == [GROUP]
    rejected = [e for e in await audit_entries(redis_client) if e.action == "telegram.rejected"]
    assert [(e.actor, (e.detail or {})["chat_id"]) for e in rejected] == [
        (f"telegram:{STRANGER}", GROUP), ("telegram:4242", 4242), (f"telegram:{OWNER}", 5555)
    ]


async def test_alerts_reach_the_group(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert

    await start_notifier()
    await raise_alert(redis_client, KEYS, Alert(
        AlertKind.MAX_DRAWDOWN_HALT, Severity.CRITICAL, "Max drawdown halt",
        "btc-sma halted: drawdown 15.2% > 15%", int(time.time() * 1000), "btc-sma"))
    message = await fake_telegram.wait_for_message(lambda m: "Max drawdown" in m.text)
    assert message.chat_id == GROUP
    assert "drawdown 15.2% > 15%" in message.text


async def test_polling_recovers_after_an_outage(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    await fake_telegram.go_down()  # cuts the open long poll: the bot sees the outage
    await fake_telegram.wait_for(lambda: fake_telegram.failed_requests >= 1)
    # the owner types /stop while the bot cannot reach Telegram
    await fake_telegram.deliver_command("/stop", GROUP, OWNER)
    assert not fake_telegram.messages
    await fake_telegram.come_up()
    reply = await fake_telegram.wait_for_message(lambda m: "STOP engaged" in m.text, within=60)
    assert reply.chat_id == GROUP
    assert (await redis_client.hgetall(KEYS.emergency))["action"] == "stop"


async def test_editing_an_old_message_into_a_command_does_nothing(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    notifier = await start_notifier()
    await fake_telegram.deliver_raw({"edited_message": {
        "message_id": 5, "date": int(time.time()) - 3600, "edit_date": int(time.time()),
        "chat": {"id": GROUP, "type": "supergroup", "title": "ops"},
        "from": {"id": OWNER, "is_bot": False, "first_name": "o"},
        "text": "/stop", "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
    }})
    reply = await command(fake_telegram, "/help")  # barrier
    assert reply.text.startswith("kubetrade bot")
    assert dict(notifier.bot.handled) == {"help": 1}
    assert await redis_client.hgetall(KEYS.emergency) == {}


async def test_alerts_and_commands_follow_a_group_upgraded_to_a_supergroup(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert

    new_id = -1009876543210
    fake_telegram.migrate_chat(GROUP, new_id)
    await start_notifier()
    await raise_alert(redis_client, KEYS, Alert(
        AlertKind.CIRCUIT_OPEN, Severity.CRITICAL, "Circuit open", "binance: 5 errors",
        int(time.time() * 1000)))
    moved = await fake_telegram.wait_for_message(lambda m: "Circuit open" in m.text)
    assert moved.chat_id == new_id
    reply = await command(fake_telegram, "/help", chat=new_id)
    assert reply.text.startswith("kubetrade bot")
