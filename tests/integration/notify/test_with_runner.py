"""Telegram commands against a real paper runner (RUNNER's code, replaying recorded
BTC/USDT candles): /stop halts it and it acks, /resume resumes it, /closeall (after
the confirmation) sells its position at market."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import OrderStatus
from kubetrade.exchange.replay import bundled_candles
from kubetrade.runner.assembly import RunnerEnv, create_runner
from kubetrade.runner.core import Runner, RunnerOptions
from kubetrade.runner.emergency import listen_redis
from tests.fakes.telegram import FakeTelegram
from tests.integration.notify._util import eventually
from tests.integration.notify.conftest import GROUP, KEYS, OWNER, StartNotifier

NAME = "btc-sma"


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": NAME},
        "spec": {
            "algorithm": "sma-crossover",
            "parameters": {"fastPeriod": 5, "slowPeriod": 20},
            "symbols": ["BTC/USDT"],
            "timeframe": "1m",
            "mode": "paper",
        },
    }


@pytest.fixture
async def paper_runner(redis_client: aioredis.Redis) -> AsyncIterator[Runner]:
    """A paper runner holding a position, listening for emergencies on Redis."""
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    env = RunnerEnv(market_data=f"replay:{csv}", replay_interval=0)
    parts, closers = await create_runner(
        manifest(), redis=redis_client, keys=KEYS, env=env,
        clock=ManualClock(1_800_000_000_000),
        options=RunnerOptions(reconcile_interval_s=0),
    )
    runner = await Runner.restore(parts)
    assert runner.engine is not None
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        if runner.engine.positions:
            break
    assert runner.engine.positions, "no position opened on the recorded candles"
    ready = asyncio.Event()
    listener = asyncio.create_task(
        listen_redis(redis_client, KEYS, runner.apply_emergency, ready)
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield runner
    finally:
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener
        for c in closers:
            with contextlib.suppress(Exception):
                result = c.close() if hasattr(c, "close") else c.aclose()
                if asyncio.iscoroutine(result):
                    await result


async def ack_of(redis: aioredis.Redis) -> dict[str, Any]:
    raw = await redis.hget(KEYS.emergency_acks, NAME)
    return json.loads(raw) if raw else {}


async def reply_to(fake: FakeTelegram, text: str, contains: str) -> Any:
    before = len(fake.messages)
    await fake.deliver_command(text, GROUP, OWNER)
    return await fake.wait_for_message(lambda m: contains in m.text, after=before, within=20)


async def test_stop_resume_closeall_drive_a_real_paper_runner(
    redis_client: aioredis.Redis,
    fake_telegram: FakeTelegram,
    start_notifier: StartNotifier,
    paper_runner: Runner,
) -> None:
    engine = paper_runner.engine
    assert engine is not None
    await start_notifier()

    # /stop: the runner halts, cancels what is pending, keeps its position, and acks;
    # the bot reports the ack back to the chat
    confirmed = await reply_to(fake_telegram, "/stop", "runner(s) confirmed stop")
    assert "1 runner(s) confirmed stop" in confirmed.text
    assert (await ack_of(redis_client))["action"] == "stop"
    assert engine.is_halted
    assert engine.positions
    assert not [o for o in paper_runner.orders.values() if not o.status.is_terminal]
    status = await reply_to(fake_telegram, "/status", "Emergency")
    assert "Emergency: STOP" in status.text and f"Halt confirmed by: {NAME}" in status.text

    # /resume
    await reply_to(fake_telegram, "/resume", "resumed")
    await eventually(lambda: _ack_is(redis_client, "none"))
    assert not engine.is_halted

    # /closeall needs the confirmation; then the position is sold at market
    ask = await reply_to(fake_telegram, "/closeall", "Close ALL")
    assert "Close ALL 1 open position(s)" in ask.text
    assert not engine.is_halted and engine.positions  # nothing happened yet
    await fake_telegram.press_button(ask, ask.buttons[0]["callback_data"], user_id=OWNER)
    await fake_telegram.wait_for_message(lambda m: "confirmed close-all" in m.text, within=20)
    assert engine.is_halted
    assert engine.positions == {}
    sells = [o for o in paper_runner.orders.values() if o.reason == "close_all"]
    assert sells and all(o.status is OrderStatus.FILLED for o in sells)
    positions = await reply_to(fake_telegram, "/positions", "position")
    assert positions.text == "No open positions."
    # the runner's own alert (position opened) reached the chat through the dispatcher
    opened = await fake_telegram.wait_for_message(lambda m: "opened BTC/USDT" in m.text)
    assert opened.chat_id == GROUP and "[btc-sma]" in opened.text


async def _ack_is(redis: aioredis.Redis, action: str) -> bool:
    return (await ack_of(redis)).get("action") == action
