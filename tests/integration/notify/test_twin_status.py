"""Telegram ``/status`` (issue 20): under a live strategy, its paper twin's P&L beside
live's, the divergence and the size step, as the runner's twin wrote them into the
summary (python-telegram-bot against the local fake Bot API, real Redis)."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.fakes.telegram import FakeTelegram
from tests.integration.notify.conftest import KEYS, StartNotifier
from tests.integration.notify.test_bot import command


async def test_status_shows_the_live_strategy_against_its_twin(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await redis_client.sadd(KEYS.strategies, "btc-live", "btc-paper")
    await redis_client.hset(KEYS.summary("btc-live"), mapping={
        "phase": "Running", "equity": "9987.70", "pnl": "-12.30", "trades": "3",
        "win_rate": "0.33", "open_positions": "0", "halted_reason": "", "mode": "live",
        "twin_divergence_pct": "0.1540", "twin_pnl": "3.10", "size_pct": "25",
    })
    await redis_client.hset(KEYS.summary("btc-paper"), mapping={
        "phase": "Running", "equity": "10001", "pnl": "1", "trades": "1",
        "win_rate": "1", "open_positions": "0", "halted_reason": "",
    })
    await start_notifier()
    status = await command(fake_telegram, "/status")
    lines = status.text.splitlines()
    live = next(i for i, line in enumerate(lines) if line.startswith("[btc-live]"))
    assert lines[live + 1] == (
        "  paper twin P&L +3.10 (live -12.30), divergence 0.1540 %, size 25 %")
    paper = next(i for i, line in enumerate(lines) if line.startswith("[btc-paper]"))
    assert not lines[paper + 1].startswith("  paper twin")
