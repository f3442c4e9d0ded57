"""Only the owner's chat commands the bot; the bot token never leaks to logs or Redis."""

from __future__ import annotations

import io
import logging
import random
import time
from typing import Any

import redis.asyncio as aioredis
from telegram import Update
from telegram.ext import TypeHandler

from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry
from tests.fakes.telegram import FakeTelegram
from tests.integration.notify._util import eventually
from tests.integration.notify.conftest import (
    DEPUTY,
    GROUP,
    KEYS,
    OWNER,
    StartNotifier,
    WallManualClock,
)

COMMANDS = ["/stop", "/closeall", "/resume", "/status", "/help", "/pnl", "/positions", "/start"]


def foreign_update(rng: random.Random, bot_username: str) -> dict[str, Any]:
    """One update the bot must not act on: a stranger in the group, anyone (owner
    included) in another chat, or an update with no user at all."""
    allowed = {OWNER, DEPUTY}
    case = rng.choice(["stranger-in-group", "other-chat", "other-chat-owner", "no-user"])
    if case == "stranger-in-group":
        chat_id, user_id = GROUP, rng.randint(1, 10**10)  # (the allowed pair is fixed below)
    elif case == "other-chat":
        chat_id = rng.choice([rng.randint(1, 10**10), -rng.randint(1, 10**13)])
        user_id = rng.randint(1, 10**10)
    elif case == "other-chat-owner":
        chat_id = rng.choice([OWNER + 1, -100, -1001234567890, rng.randint(1, 10**9)])
        user_id = rng.choice(sorted(allowed))
    else:
        chat_id, user_id = rng.choice([GROUP, rng.randint(1, 10**9)]), 0
    if chat_id == GROUP and user_id in allowed:  # never the allowed pair
        user_id = 4
    chat = ({"id": chat_id, "type": "supergroup", "title": "x"} if chat_id < 0
            else {"id": chat_id, "type": "private", "first_name": "x"})
    user = {"id": user_id, "is_bot": False, "first_name": "u"}
    command = rng.choice(COMMANDS)
    text = rng.choice([
        command,
        f"{command}@{bot_username}",
        f"{command} now please",
        "".join(rng.choice("abc /xyz€🚨_*[]") for _ in range(rng.randint(1, 40))),
    ])
    message: dict[str, Any] = {"message_id": rng.randint(1, 10**6), "date": int(time.time()),
                               "chat": chat, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": len(text.split()[0])}]
    kind = rng.choice(["message", "edited_message", "callback_query", "channel_post"])
    if case == "no-user":
        kind = rng.choice(["channel_post", "inline_query"])
    if kind in ("message", "edited_message"):
        message["from"] = user
        if kind == "edited_message":
            message["edit_date"] = int(time.time())
        return {kind: message}
    if kind == "channel_post":
        message["chat"] = {"id": chat_id, "type": "channel", "title": "c"}
        return {"channel_post": message}
    if kind == "inline_query":
        return {"inline_query": {"id": str(rng.randint(1, 10**9)), "from": user or {"id": 5},
                                 "query": text, "offset": ""}}
    message["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
    return {"callback_query": {
        "id": str(rng.randint(1, 10**9)), "from": user, "chat_instance": "ci",
        "data": rng.choice([f"closeall:yes:{rng.getrandbits(64):016x}",
                            f"closeall:no:{rng.getrandbits(64):016x}", "x"]),
        "message": message,
    }}


async def test_a_thousand_foreign_updates_run_no_handler(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    notifier = await start_notifier(clock=WallManualClock())
    # a catch-all spy after the gate: counts every update any handler could see
    seen: list[Update] = []

    async def spy(update: Update, context: Any) -> None:
        seen.append(update)

    notifier.app.add_handler(TypeHandler(Update, spy), group=99)
    rng = random.Random(20261127)
    for _ in range(1000):
        fake_telegram.queue_raw(foreign_update(rng, fake_telegram.bot_username))
    # barrier: updates are handled in order, so once the owner's /help is answered,
    # all thousand foreign ones have been through the gate
    before = len(fake_telegram.messages)
    await fake_telegram.deliver_command("/help", GROUP, OWNER)
    await fake_telegram.wait_for_message(lambda m: m.chat_id == GROUP, after=before, within=120)

    assert notifier.bot.rejected == 1000
    assert dict(notifier.bot.handled) == {"help": 1}
    await eventually(lambda: seen)  # the spy runs after /help's handler has replied
    assert len(seen) == 1 and seen[0].effective_user is not None
    assert seen[0].effective_user.id == OWNER
    assert [m.chat_id for m in fake_telegram.messages] == [GROUP]
    assert fake_telegram.callback_answers == []
    assert await redis_client.hgetall(KEYS.emergency) == {}
    r: Any = redis_client
    audit = [AuditEntry.from_stream(i, f) for i, f in await r.xrange(KEYS.audit)]
    rejected = [e for e in audit if e.action == "telegram.rejected"]
    # the refusal audit is rate-limited: a flood cannot fill Redis
    assert len(rejected) == 10
    assert [e.action for e in audit if e.action != "telegram.rejected"] == ["telegram.command"]


async def test_the_token_never_appears_in_logs_or_redis(
    redis_client: aioredis.Redis,
    fake_telegram: FakeTelegram,
    start_notifier: StartNotifier,
    caplog: Any,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        notifier = await start_notifier()
        # the most talkative levels, on the loggers that print URLs
        for name in ("", "httpx", "httpcore", "telegram", "kubetrade"):
            caplog.set_level(logging.DEBUG, logger=name)
        await fake_telegram.deliver_command("/status", GROUP, OWNER)
        await fake_telegram.wait_for_message(lambda m: m.text.startswith("Emergency"))
        # failures log exceptions (with URLs in their chains)
        await fake_telegram.go_down()
        await raise_alert(redis_client, KEYS, Alert(
            AlertKind.CIRCUIT_OPEN, Severity.WARNING, "Circuit open", "binance: 5 errors",
            int(time.time() * 1000)))
        await eventually(lambda: notifier.dispatcher.send_failures >= 3)
        await fake_telegram.come_up()
        await fake_telegram.wait_for_message(lambda m: "Circuit open" in m.text, within=30)
    finally:
        root.removeHandler(handler)
    secret = fake_telegram.token.split(":", 1)[1]
    logged = caplog.text + stream.getvalue()
    assert "HTTP Request" in logged  # httpx did log its URLs...
    assert "<redacted>" in logged  # ...with the token masked
    assert secret not in logged
    for record in caplog.records:
        assert secret not in record.getMessage()
    # nor in Redis (audit, alerts, anything)
    for key in await redis_client.keys("*"):
        kind = await redis_client.type(key)
        if kind == "stream":
            dump = str(await redis_client.xrange(key))
        elif kind == "hash":
            dump = str(await redis_client.hgetall(key))
        elif kind == "string":
            dump = str(await redis_client.get(key))
        else:
            dump = ""
        assert secret not in dump, key
