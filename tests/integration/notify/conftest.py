"""A running ``Notifier`` (bot + dispatcher) on the fake Telegram API and real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from kubetrade.domain.clock import Clock, ManualClock
from kubetrade.notify.dispatcher import DispatcherOptions
from kubetrade.notify.service import Notifier
from kubetrade.notify.settings import NotifySettings
from kubetrade.state.desired import DesiredState, LocalDesiredState
from kubetrade.state.keys import Keys
from tests.fakes.telegram import FakeTelegram

GROUP = -100777  # the operators' group chat
OWNER = 111  # allowed user
DEPUTY = 222  # allowed user
STRANGER = 999  # member of the group, not allowed
KEYS = Keys("kt-bot-test")

StartNotifier = Callable[..., Any]


def settings_for(fake: FakeTelegram, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "telegram_bot_token": fake.token,
        "telegram_chat_id": GROUP,
        "telegram_allowed_user_ids": f"{OWNER},{DEPUTY}",
        "telegram_api_base_url": fake.root_url,
        "telegram_alert_linger_seconds": 0.05,
    }
    values.update(overrides)
    return NotifySettings(**values)


class WallManualClock(ManualClock):
    """Manual time that starts at the wall clock (message dates are wall time)."""

    def __init__(self) -> None:
        super().__init__(time.time_ns() // 1_000_000)


@pytest.fixture
async def start_notifier(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> AsyncIterator[StartNotifier]:
    started: list[tuple[Notifier, asyncio.Task[None]]] = []

    async def start(
        clock: Clock | None = None,
        desired: DesiredState | None = None,
        redis: aioredis.Redis | None = None,
        **overrides: Any,
    ) -> Notifier:
        settings = settings_for(fake_telegram, **overrides)
        desired = desired or LocalDesiredState(redis_client, KEYS, clock)
        notifier = Notifier(
            settings,
            redis or redis_client,
            KEYS,
            desired,
            clock=clock,
            consumer="notify-test",
            dispatcher_options=DispatcherOptions(block_ms=100, backoff_base=0.02, backoff_cap=0.2),
            poll_timeout=1,
        )
        notifier.bot.ack_wait_seconds = 30.0
        task = asyncio.create_task(notifier.run())
        started.append((notifier, task))
        await asyncio.wait_for(notifier.started.wait(), 60)
        await fake_telegram.wait_polling(within=60)
        return notifier

    yield start
    for notifier, task in started:
        notifier.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 15)
