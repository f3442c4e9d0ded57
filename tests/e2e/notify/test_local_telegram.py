"""`kubetrade local` with TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID set, as a user runs it:
the whole system in one process (embedded Redis, paper runners on replayed candles,
the API) plus the notifier, driven only through the fake Telegram Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.telegram import FakeTelegram

REPO = Path(__file__).resolve().parents[3]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
GROUP, OWNER = -100555, 4242


async def test_local_trades_alert_and_obey_stop_and_resume_from_telegram(
    fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    from tests.fakes.telegram.server import free_port

    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "KUBETRADE_MARKET_DATA", "KUBETRADE_NAMESPACE",
                        "POD_NAMESPACE")}
    env.update({
        "TELEGRAM_BOT_TOKEN": fake_telegram.token,
        "TELEGRAM_CHAT_ID": str(GROUP),
        "TELEGRAM_ALLOWED_USER_IDS": str(OWNER),
        "TELEGRAM_API_BASE_URL": fake_telegram.root_url,
        "KUBETRADE_REDIS_PREFIX": "e2e-telegram",
        "KUBETRADE_REPLAY_INTERVAL": "0.02",
        "PYTHONUNBUFFERED": "1",
    })
    log = tmp_path / "local.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            KUBETRADE, "local", "--port", str(free_port()), "--market-data", "replay:bundled",
            "--strategies", str(REPO / "examples" / "strategies"),
            "--data-dir", str(tmp_path / "data"),
            cwd=REPO, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await fake_telegram.wait_polling(within=90)
            # the runners' alerts reach the chat through the dispatcher
            alert = await fake_telegram.wait_for_message(
                lambda m: "BTC/USDT" in m.text and "[btc-" in m.text, within=180
            )
            assert alert.chat_id == GROUP

            await fake_telegram.deliver_command("/stop", GROUP, OWNER)
            confirmed = await fake_telegram.wait_for_message(
                lambda m: "confirmed stop" in m.text, within=60
            )
            assert "runner(s) confirmed stop" in confirmed.text
            assert "Not confirmed" not in confirmed.text

            before = len(fake_telegram.messages)
            await fake_telegram.deliver_command("/status", GROUP, OWNER)
            status = await fake_telegram.wait_for_message(
                lambda m: m.text.startswith("Emergency"), after=before, within=30
            )
            assert "Emergency: STOP" in status.text and "by telegram:4242" in status.text
            assert "Halted" in status.text

            await fake_telegram.deliver_command("/resume", GROUP, OWNER)
            await fake_telegram.wait_for_message(lambda m: "resumed" in m.text, within=30)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert fake_telegram.token.split(":", 1)[1] not in text
