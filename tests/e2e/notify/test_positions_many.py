"""Case telegram-too-long (tests/data/cases/telegram-too-long, issue 17 item 6): /positions
with 60 open positions (3 strategies x 20 symbols, in the runner's key format) through
`kubetrade notify` and the fake Bot API, which refuses a message over 4,096 characters as
Telegram does. Expected: the whole answer reaches the chat, split into messages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import redis

from kubetrade.notify.paging import MAX_MESSAGE, units
from kubetrade.state.keys import Keys
from tests.fakes.telegram import FakeTelegram

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CASE = Path(__file__).resolve().parents[2] / "data" / "cases" / "telegram-too-long"
CHAT = 4242
SYMS = ["BTC", "ETH", "BNB", "SOL", "XRP", "DOGE", "ADA", "TRX", "AVAX", "LINK",
        "DOT", "MATIC", "LTC", "BCH", "UNI", "ATOM", "XLM", "ETC", "FIL", "1000PEPE"]
STRATEGIES = ["btc-sma-crossover-fast", "alt-rsi-mean-reversion", "alt-bollinger-breakout"]


def _seed(redis_url: str, keys: Keys) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for strat in STRATEGIES:
        r.sadd(keys.strategies, strat)
        r.hset(keys.summary(strat), mapping={"phase": "Running", "equity": "10000", "pnl": "0"})
        for base in SYMS:
            sym = f"{base}/USDT"
            pos = {"strategy": strat, "symbol": sym, "quantity": "1234.56789000",
                   "average_price": "0.01234567", "opened_ms": 1726876800000,
                   "stop_price": "0.01172838650", "fees": "0.01234567"}
            r.hset(keys.positions(strat), sym, json.dumps(pos))
    r.close()


async def test_positions_with_60_open_positions_reach_the_chat_whole(
    fake_telegram: FakeTelegram, redis_url: str, tmp_path: Path
) -> None:
    assert (CASE / "repro_positions.py").is_file()
    prefix = f"tg-{uuid.uuid4().hex[:8]}"
    _seed(redis_url, Keys(prefix))
    env = dict(os.environ, REDIS_URL=redis_url, KUBETRADE_REDIS_PREFIX=prefix,
               TELEGRAM_BOT_TOKEN=fake_telegram.token, TELEGRAM_CHAT_ID=str(CHAT),
               TELEGRAM_API_BASE_URL=fake_telegram.root_url)
    with (tmp_path / "notify.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            KUBETRADE, "notify", env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        await fake_telegram.wait_polling(within=60)
        before = len(fake_telegram.messages)
        await fake_telegram.deliver_command("/positions", CHAT, 1)
        first = await fake_telegram.wait_for_message(
            lambda m: m.chat_id == CHAT and m.text.startswith("(1/"), within=30, after=before)
        total = int(first.text.split("/", 1)[1].split(")", 1)[0])
        await fake_telegram.wait_for(
            lambda: len(fake_telegram.messages_to(CHAT)[-total:]) == total
            and fake_telegram.messages_to(CHAT)[-1].text.startswith(f"({total}/{total})"),
            30,
        )
        replies = [m.text for m in fake_telegram.messages[before:] if m.chat_id == CHAT]
        assert total >= 2 and len(replies) == total
        assert all(units(t) <= MAX_MESSAGE for t in replies)
        lines = [line for t in replies for line in t.split("\n")[1:]]
        assert len(lines) == 60 and not any("failed" in t for t in replies)
        for strat in STRATEGIES:
            for base in SYMS:
                assert any(line.startswith(f"[{strat}] {base}/USDT qty") for line in lines)
        assert fake_telegram.failed_requests == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
