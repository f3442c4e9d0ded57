"""The alert dispatcher against a real Redis and the fake Telegram Bot API.

What an operator relies on: every alert raised reaches the chat, none twice, even
when Telegram is down for a while, rate-limits us, or the notifier crashes mid-way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
import telegram

from kubetrade.domain.clock import Clock, ManualClock
from kubetrade.notify.dispatcher import (
    SENDING,
    SENT,
    AlertDispatcher,
    DispatcherOptions,
    bot_sender,
    sent_key,
)
from kubetrade.state.alert_inbox import AlertInbox
from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.keys import ALERTS_GROUP, Keys
from tests.fakes.telegram import FakeTelegram
from tests.fixtures.tcp_cut import tcp_cut
from tests.integration.notify._util import eventually

CHAT = -100123
KEYS = Keys("kt-notify-test")


def alert(n: int, severity: Severity = Severity.INFO) -> Alert:
    return Alert(
        kind=AlertKind.TRADE_OPENED,
        severity=severity,
        title=f"alert-{n:04d}",
        text=f"BUY 0.01 BTC/USDT @ {60000 + n}",
        ts_ms=1_700_000_000_000 + n,
        strategy="btc-sma",
    )


def titles_in(fake: FakeTelegram) -> list[str]:
    found: list[str] = []
    for m in fake.messages_to(CHAT):
        found.extend(w for w in m.text.replace(":", " ").split() if w.startswith("alert-"))
    return found


@contextlib.asynccontextmanager
async def bot_for(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    bot = telegram.Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
    async with bot:
        yield bot


@contextlib.asynccontextmanager
async def running(dispatcher: AlertDispatcher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield task
    finally:
        dispatcher.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 10)


def make(
    redis: aioredis.Redis,
    send: Any,
    consumer: str = "notify-0",
    clock: Clock | None = None,
    **options: Any,
) -> AlertDispatcher:
    """A dispatcher that lingers, blocks and backs off briefly (``options`` override)."""
    fast = {"linger_seconds": 0.05, "block_ms": 100, "backoff_base": 0.02, "backoff_cap": 0.2}
    return AlertDispatcher(
        AlertInbox(redis, KEYS), send, consumer, clock, DispatcherOptions(**(fast | options))
    )


async def pending_count(redis: aioredis.Redis) -> int:
    info = await redis.xpending(KEYS.alerts, ALERTS_GROUP)
    return int(info["pending"])


async def test_alerts_raised_during_an_outage_all_arrive_once(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        async with running(dispatcher):
            for n in range(3):
                await raise_alert(redis_client, KEYS, alert(n))
            await eventually(lambda: len(titles_in(fake_telegram)) == 3)

            await fake_telegram.go_down()
            for n in range(3, 40):
                await raise_alert(redis_client, KEYS, alert(n))
            # the dispatcher is trying and failing while Telegram is away
            await eventually(lambda: dispatcher.send_failures >= 3)
            assert len(titles_in(fake_telegram)) == 3
            await fake_telegram.come_up()

            await eventually(lambda: len(titles_in(fake_telegram)) >= 40)
            await eventually(lambda: _pending_zero(redis_client))

    titles = titles_in(fake_telegram)
    assert sorted(titles) == [f"alert-{n:04d}" for n in range(40)]  # all, none twice
    # what piled up during the outage went out grouped, not as 37 messages
    assert len(fake_telegram.messages_to(CHAT)) < 40


async def _pending_zero(redis: aioredis.Redis) -> bool:
    """Every alert in the stream was read by the group and acked (not merely: none
    pending, which also holds before the dispatcher read anything)."""
    try:
        groups = await redis.xinfo_groups(KEYS.alerts)
    except aioredis.ResponseError:
        return False
    stream = await redis.xinfo_stream(KEYS.alerts)
    for g in groups:
        if g["name"] == ALERTS_GROUP:
            return bool(
                g["pending"] == 0 and g["last-delivered-id"] == stream["last-generated-id"]
            )
    return False


async def test_server_errors_are_retried_and_the_alert_sent_once(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next(3, status=502, methods={"sendMessage"})
    fake_telegram.fail_next(2, status=500, methods={"sendMessage"})
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        await raise_alert(redis_client, KEYS, alert(1, Severity.CRITICAL))
        async with running(dispatcher):
            await eventually(lambda: _pending_zero(redis_client))
    assert titles_in(fake_telegram) == ["alert-0001"]
    assert dispatcher.send_failures == 5
    assert await redis_client.get(sent_key(KEYS, (await _ids(redis_client))[0])) == SENT


async def _ids(redis: aioredis.Redis) -> list[str]:
    r: Any = redis
    return [str(i) for i, _ in await r.xrange(KEYS.alerts)]


class RecordingClock(ManualClock):
    """Manual time that records every sleep the dispatcher asks for."""

    def __init__(self) -> None:
        super().__init__(1_700_000_000_000)
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


async def test_429_retry_after_is_honoured(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.rate_limit_next(retry_after=17, methods={"sendMessage"})
    clock = RecordingClock()
    attempts: list[int] = []
    async with bot_for(fake_telegram) as bot:
        inner = bot_sender(bot, CHAT)

        async def send(text: str) -> None:
            attempts.append(clock.now_ms())
            await inner(text)

        dispatcher = make(redis_client, send, clock=clock, linger_seconds=0)
        await raise_alert(redis_client, KEYS, alert(7))
        async with running(dispatcher):
            await eventually(lambda: _pending_zero(redis_client))
    assert titles_in(fake_telegram) == ["alert-0007"]
    assert len(attempts) == 2
    # the retry came no earlier than Telegram asked
    assert attempts[1] - attempts[0] >= 17_000
    assert 17 in clock.sleeps


async def test_fifty_alerts_at_once_are_grouped(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    # one MULTI: all fifty are in the stream before the dispatcher can see any of them
    async with redis_client.pipeline(transaction=True) as pipe:
        for n in range(50):
            severity = Severity.CRITICAL if n == 42 else Severity.INFO
            pipe.xadd(KEYS.alerts, alert(n, severity).fields())
        await pipe.execute()
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        async with running(dispatcher):
            await eventually(lambda: _pending_zero(redis_client))
    messages = fake_telegram.messages_to(CHAT)
    assert sorted(titles_in(fake_telegram)) == [f"alert-{n:04d}" for n in range(50)]
    assert 1 <= len(messages) <= 2, [len(m.text) for m in messages]
    assert all(len(m.text) <= 4096 for m in messages)
    # the one critical alert leads the group
    assert "alert-0042" in messages[0].text.splitlines()[1]
    assert messages[0].text.startswith("50 alerts (1 critical, 49 info)") or len(messages) == 2


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the dispatcher may catch it)."""


async def test_crash_after_send_before_ack_does_not_send_twice(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        inner = bot_sender(bot, CHAT)
        await raise_alert(redis_client, KEYS, alert(1))
        first = make(redis_client, inner, consumer="pod-a")
        # deliver, then "die" between the SET sent and the XACK: emulate by marking
        # sent and leaving the entry pending in pod-a's list
        await first.ensure_group()
        entries = await first._read(">", 10, None)
        assert len(entries) == 1
        await inner("alert-0001 delivered by pod-a")
        await redis_client.set(sent_key(KEYS, entries[0][0]), SENT)
        assert await pending_count(redis_client) == 1

        second = make(redis_client, inner, consumer="pod-b", claim_idle_ms=0)
        async with running(second):
            await eventually(lambda: _pending_zero(redis_client))
    assert titles_in(fake_telegram) == ["alert-0001"]
    assert second.duplicates_skipped == 1


async def test_crash_during_send_resends_flagged_as_possible_repeat(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        inner = bot_sender(bot, CHAT)

        async def send_then_die(text: str) -> None:
            await inner(text)
            raise Crash

        await raise_alert(redis_client, KEYS, alert(2))
        first = make(redis_client, send_then_die, consumer="pod-a")
        with pytest.raises(Crash):
            await first.run()
        alert_id = (await _ids(redis_client))[0]
        assert await redis_client.get(sent_key(KEYS, alert_id)) == SENDING

        # the same pod restarts (same consumer name) and re-reads its own pending entry
        again = make(redis_client, inner, consumer="pod-a")
        async with running(again):
            await eventually(lambda: _pending_zero(redis_client))
    texts = [m.text for m in fake_telegram.messages_to(CHAT)]
    assert len(texts) == 2
    assert "may have seen it already" in texts[1]
    assert await redis_client.get(sent_key(KEYS, alert_id)) == SENT


async def test_alerts_raised_before_the_notifier_first_ran_are_delivered(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    await raise_alert(redis_client, KEYS, alert(5))
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        async with running(dispatcher):
            await eventually(lambda: _pending_zero(redis_client) if titles_in(fake_telegram)
                             else False)
    assert titles_in(fake_telegram) == ["alert-0005"]


async def test_rate_limit_holds_twenty_per_minute_to_the_chat(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    clock = RecordingClock()
    sent_at: list[int] = []
    async with bot_for(fake_telegram) as bot:
        inner = bot_sender(bot, CHAT)

        async def send(text: str) -> None:
            sent_at.append(clock.now_ms())
            await inner(text)

        dispatcher = make(redis_client, send, clock=clock, linger_seconds=0,
                          send_limits=((20, 60.0), (30, 1.0)))
        await dispatcher.ensure_group()
        for n in range(45):  # one at a time: each its own batch, no grouping possible
            await raise_alert(redis_client, KEYS, alert(n))
            await dispatcher.step()
    assert sorted(titles_in(fake_telegram)) == [f"alert-{n:04d}" for n in range(45)]
    for i in range(len(sent_at)):
        window = [t for t in sent_at if sent_at[i] <= t < sent_at[i] + 60_000]
        assert len(window) <= 20


async def test_a_timeout_is_retried_and_a_possible_repeat_is_flagged(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    from telegram.request import HTTPXRequest

    fake_telegram.hang_next(1.5, methods={"sendMessage"})  # answers after the client gave up
    bot = telegram.Bot(fake_telegram.token, base_url=fake_telegram.base_url,
                       request=HTTPXRequest(read_timeout=0.3))
    async with bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        await raise_alert(redis_client, KEYS, alert(3))
        async with running(dispatcher):
            await eventually(lambda: _pending_zero(redis_client))
            # the stalled request lands too: Telegram would have shown both
            await fake_telegram.wait_for(lambda: len(fake_telegram.messages_to(CHAT)) == 2)
    texts = [m.text for m in fake_telegram.messages_to(CHAT)]
    flagged = [t for t in texts if "may be a repeat" in t]
    assert len(flagged) == 1 and "alert-0003" in flagged[0]


async def test_lost_redis_connections_do_not_lose_or_repeat_alerts(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        async with running(dispatcher):
            for n in range(5):
                await raise_alert(redis_client, KEYS, alert(n))
            await eventually(lambda: len(titles_in(fake_telegram)) == 5)
            # every connection but this one is cut (a Redis failover / network blip)
            r: Any = redis_client
            killed = await r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert int(killed) >= 1
            for n in range(5, 10):
                await raise_alert(redis_client, KEYS, alert(n))
            await eventually(lambda: _pending_zero(redis_client))
    assert sorted(titles_in(fake_telegram)) == [f"alert-{n:04d}" for n in range(10)]


async def test_redis_lost_between_telegram_confirming_and_the_mark_repeats_nothing(
    redis_url: str, redis_client: aioredis.Redis, fake_telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The race the connection-kill test above can hit by chance, made certain: Redis
    goes away right after Telegram confirmed a message, before it is marked sent. The
    dispatcher knows it was delivered, so it must keep the mark, not send it again."""
    url = urlsplit(redis_url)
    async with tcp_cut(url.hostname or "127.0.0.1", url.port or 6379) as link:
        own = aioredis.from_url(f"redis://127.0.0.1:{link.port}{url.path}",
                                decode_responses=True)
        async with own, bot_for(fake_telegram) as bot:
            inner = bot_sender(bot, CHAT)
            cuts: list[str] = []

            async def send(text: str) -> None:
                await inner(text)
                if "alert-0002" in text and not cuts:
                    cuts.append(text)
                    link.cut()  # confirmed by Telegram; the mark has not reached Redis

            dispatcher = make(own, send, linger_seconds=0)
            async with running(dispatcher):
                for n in range(3):
                    await raise_alert(redis_client, KEYS, alert(n))
                    await fake_telegram.wait_for(
                        lambda: len(fake_telegram.messages_to(CHAT)) == n + 1)  # noqa: B023
                await eventually(lambda: "ConnectionError" in caplog.text)
                link.restore()
                await eventually(lambda: _pending_zero(redis_client))
                await raise_alert(redis_client, KEYS, alert(3))
                await eventually(lambda: _pending_zero(redis_client))
    assert sorted(titles_in(fake_telegram)) == [f"alert-{n:04d}" for n in range(4)]
    assert not [m for m in fake_telegram.messages_to(CHAT) if "may be a repeat" in m.text]


async def test_a_deleted_stream_is_recreated_and_delivery_goes_on(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        dispatcher = make(redis_client, bot_sender(bot, CHAT))
        async with running(dispatcher):
            await raise_alert(redis_client, KEYS, alert(1))
            await eventually(lambda: len(titles_in(fake_telegram)) == 1)
            await redis_client.delete(KEYS.alerts)  # e.g. an operator's manual cleanup
            await raise_alert(redis_client, KEYS, alert(2))
            await eventually(lambda: len(titles_in(fake_telegram)) == 2)
    assert titles_in(fake_telegram) == ["alert-0001", "alert-0002"]


async def test_stop_does_not_wait_for_the_rate_limiter(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    async with bot_for(fake_telegram) as bot:
        # one message per hour: the second alert would wait an hour for its slot
        dispatcher = make(redis_client, bot_sender(bot, CHAT), send_limits=((1, 3600.0),))
        limiter = dispatcher.limiter
        task = asyncio.create_task(dispatcher.run())
        await raise_alert(redis_client, KEYS, alert(1))
        await eventually(lambda: len(titles_in(fake_telegram)) == 1)
        await raise_alert(redis_client, KEYS, alert(2))
        await eventually(lambda: limiter.delay() > 0 and dispatcher.alerts_sent == 1)
        dispatcher.stop()
        await asyncio.wait_for(task, 30)
    assert titles_in(fake_telegram) == ["alert-0001"]
    assert not await _pending_zero(redis_client)  # alert 2 waits in Redis, not lost
