"""`kubetrade local` with TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID set starts the notifier:
paper trades become Telegram alerts (sent to a local fake Bot API server)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

from tests.fakes.telegram import FakeTelegram

REPO = Path(__file__).resolve().parents[2]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CHAT_ID = 4242


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_local_sends_trade_alerts_to_telegram(
    fake_telegram: FakeTelegram, redis_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBETRADE_MARKET_DATA"}
    env.update(
        REDIS_URL=redis_url,
        KUBETRADE_REDIS_PREFIX=f"tg-{uuid.uuid4().hex[:8]}",
        KUBETRADE_REPLAY_INTERVAL="0.02",
        TELEGRAM_BOT_TOKEN=fake_telegram.token,
        TELEGRAM_CHAT_ID=str(CHAT_ID),
        TELEGRAM_API_BASE_URL=fake_telegram.root_url,
        TELEGRAM_ALERT_LINGER_SECONDS="0",
    )
    log = tmp_path / "local.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            KUBETRADE, "local", "--port", str(_free_port()), "--market-data", "replay:bundled",
            "--strategies", str(REPO / "examples" / "strategies"),
            cwd=REPO, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            message = await fake_telegram.wait_for_message(
                lambda m: m.chat_id == CHAT_ID and "BTC/USDT" in m.text, within=120
            )
            assert "btc-" in message.text
            assert fake_telegram.token not in log.read_text()  # the token never logged
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
