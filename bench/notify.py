"""Figures for the Telegram notifier (prints, asserts nothing).

    .venv/bin/python -m bench.notify [--alerts 2000] [--outage 3] [--foreign 1000]

1. Outage drain: the dispatcher runs against the fake Bot API; Telegram goes down,
   ``--alerts`` alerts are raised, it comes back after ``--outage`` seconds. Prints
   delivered/duplicates/messages and the time to drain after Telegram returned.
2. Gate: ``--foreign`` updates from strangers go through the bot; prints updates/s
   and how many refusal audits reached Redis.

Uses a private redis-server (tests/bed) and the fake Telegram server (tests/fakes);
the real Telegram pace (20 messages/min to one chat) is kept, so grouping is what
makes a big backlog drain quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import redis.asyncio as aioredis
import telegram

from kubetrade.notify.dispatcher import AlertDispatcher, DispatcherOptions, bot_sender
from kubetrade.state.alert_inbox import AlertInbox
from kubetrade.state.alerts import Alert, AlertKind, Severity
from kubetrade.state.keys import ALERTS_GROUP, Keys
from tests.bed.redis import start_redis
from tests.fakes.telegram import FakeTelegram

CHAT = -100200300


async def outage_drain(url: str, alerts: int, outage: float) -> None:
    keys = Keys("bench-notify")
    redis = aioredis.from_url(url, decode_responses=True)
    await redis.flushdb()
    fake = FakeTelegram()
    await fake.start()
    bot = telegram.Bot(fake.token, base_url=fake.base_url)
    async with bot:
        dispatcher = AlertDispatcher(
            AlertInbox(redis, keys), bot_sender(bot, CHAT), "bench",
            options=DispatcherOptions(linger_seconds=0.2, block_ms=200,
                                      backoff_base=0.1, backoff_cap=1.0),
        )
        task = asyncio.create_task(dispatcher.run())
        await fake.go_down()
        t0 = time.perf_counter()
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(alerts):
                pipe.xadd(keys.alerts, Alert(
                    AlertKind.TRADE_CLOSED, random.choice(list(Severity)), f"a{n}",
                    f"closed BTC/USDT pnl {n % 97 - 48}.00", int(time.time() * 1000), "s",
                ).fields())
            await pipe.execute()
        raise_s = time.perf_counter() - t0
        await asyncio.sleep(outage)
        await fake.come_up()
        back = time.perf_counter()
        while True:
            groups = await redis.xinfo_groups(keys.alerts)
            g = next(g for g in groups if g["name"] == ALERTS_GROUP)
            if g["pending"] == 0 and g.get("lag") == 0:
                break
            await asyncio.sleep(0.05)
        drain_s = time.perf_counter() - back
        dispatcher.stop()
        await task
    delivered = [w for m in fake.messages for w in m.text.replace(":", " ").split()
                 if w.startswith("a") and w[1:].isdigit()]
    print(f"outage drain: {alerts} alerts raised in {raise_s:.2f} s during a {outage:.1f} s "
          f"outage; after Telegram returned: delivered {len(set(delivered))}/{alerts}, "
          f"duplicates {len(delivered) - len(set(delivered))}, in {len(fake.messages)} "
          f"messages, drained in {drain_s:.2f} s; send failures during outage "
          f"{dispatcher.send_failures}")
    await fake.stop()
    await redis.aclose()


async def gate(url: str, foreign: int) -> None:
    from kubetrade.notify.service import Notifier
    from kubetrade.notify.settings import NotifySettings
    from kubetrade.state.desired import LocalDesiredState

    keys = Keys("bench-gate")
    redis = aioredis.from_url(url, decode_responses=True)
    await redis.flushdb()
    fake = FakeTelegram()
    await fake.start()
    settings = NotifySettings(telegram_bot_token=fake.token, telegram_chat_id=CHAT,
                              telegram_allowed_user_ids="1",
                              telegram_api_base_url=fake.root_url)
    notifier = Notifier(settings, redis, keys, LocalDesiredState(redis, keys),
                        consumer="bench", poll_timeout=1)
    task = asyncio.create_task(notifier.run())
    await notifier.started.wait()
    rng = random.Random(1)
    for _ in range(foreign):
        chat = rng.choice([CHAT, rng.randint(2, 10**9)])
        fake.queue_raw({"message": {
            "message_id": 1, "date": int(time.time()), "text": "/stop",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            "chat": {"id": chat, "type": "supergroup" if chat < 0 else "private",
                     "title": "t", "first_name": "f"},
            "from": {"id": rng.randint(2, 10**9), "is_bot": False, "first_name": "x"},
        }})
    t0 = time.perf_counter()
    await fake.deliver_command("/help", CHAT, 1)
    await fake.wait_for_message(lambda m: m.chat_id == CHAT, within=300)
    took = time.perf_counter() - t0
    audits = await redis.xlen(keys.audit)
    print(f"gate: {foreign} foreign updates refused in {took:.2f} s "
          f"({foreign / took:.0f} updates/s incl. polling), handlers run for them: "
          f"{sum(notifier.bot.handled.values()) - 1}, audit entries written: {audits - 1}")
    notifier.stop()
    await task
    await fake.stop()
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--outage", type=float, default=3.0)
    parser.add_argument("--foreign", type=int, default=1000)
    args = parser.parse_args()
    server = start_redis()
    try:
        asyncio.run(outage_drain(server.url, args.alerts, args.outage))
        asyncio.run(gate(server.url, args.foreign))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
