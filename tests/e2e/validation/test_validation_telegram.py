"""The runbook: the validation report is "sent via Telegram (if configured)".

`kubetrade validate` raises the result as an alert in Redis; `kubetrade notify` (the
notifier process, on the fake Telegram Bot API) delivers it to the operators' chat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.telegram import FakeTelegram
from tests.unit.validation._data import shared_data, strategy_yaml

CHAT = -100555


async def test_validation_result_reaches_the_telegram_chat(
    redis_url: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "POD_"))}
    env.update({"REDIS_URL": redis_url, "KUBETRADE_REDIS_PREFIX": "val-tg"})
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("ltc-rsi", "rsi-mean-reversion",
                                  "{period: 5, oversold: 20, overbought: 60}", "LTC/BTC", "5m"))
    validate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubetrade", "validate", "--strategy-file", str(spec),
        "--replay", str(shared_data("freqtrade-LTCBTC-5m-2018-01.csv")),
        "--report-dir", str(tmp_path / "data"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(validate.communicate(), 120)
    assert validate.returncode == 0, err.decode()[-2000:]

    env.update({
        "TELEGRAM_BOT_TOKEN": fake_telegram.token,
        "TELEGRAM_CHAT_ID": str(CHAT),
        "TELEGRAM_ALLOWED_USER_IDS": "111",
        "TELEGRAM_API_BASE_URL": fake_telegram.root_url,
        "POD_NAME": "notify-validation-test",
    })
    notify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubetrade", "notify", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        message = await fake_telegram.wait_for_message(
            lambda m: "Validation GO: ltc-rsi" in m.text, within=60)
    finally:
        notify.send_signal(signal.SIGTERM)
        await asyncio.wait_for(notify.wait(), 60)
    assert message.chat_id == CHAT
    assert "PASS Win Rate" in message.text and "PASS Max Drawdown" in message.text
    assert str(tmp_path / "data") in message.text  # where the full report is
    assert out.decode().strip().splitlines()[0] in message.text
