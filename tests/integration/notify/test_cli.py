"""``kubetrade notify`` as the pod runs it: a process configured by environment only."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import redis.asyncio as aioredis

from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from tests.fakes.telegram import FakeTelegram
from tests.integration.notify.conftest import DEPUTY, GROUP, KEYS, OWNER


def notify_env(redis_url: str, fake_telegram: FakeTelegram) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("KUBETRADE_NAMESPACE", "POD_NAMESPACE", "KUBECONFIG",
                     "KUBERNETES_SERVICE_HOST")
    }
    env.update({
        "TELEGRAM_BOT_TOKEN": fake_telegram.token,
        "TELEGRAM_CHAT_ID": str(GROUP),
        "TELEGRAM_ALLOWED_USER_IDS": f"{OWNER},{DEPUTY}",
        "TELEGRAM_API_BASE_URL": fake_telegram.root_url,
        "REDIS_URL": redis_url,
        "KUBETRADE_REDIS_PREFIX": KEYS.prefix,
        "POD_NAME": "notify-cli-test",
        "LOG_LEVEL": "DEBUG",
    })
    return env


async def test_kubetrade_notify_process_commands_alerts_and_clean_stop(
    redis_url: str, redis_client: aioredis.Redis, fake_telegram: FakeTelegram
) -> None:
    env = notify_env(redis_url, fake_telegram)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubetrade", "notify",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake_telegram.wait_polling(within=60)
        await fake_telegram.deliver_command("/stop", GROUP, OWNER)
        reply = await fake_telegram.wait_for_message(lambda m: "STOP" in m.text, within=20)
        assert reply.chat_id == GROUP
        assert (await redis_client.hgetall(KEYS.emergency))["action"] == "stop"
        await raise_alert(redis_client, KEYS, Alert(
            AlertKind.PREFLIGHT_FAIL, Severity.CRITICAL, "Pre-flight FAIL",
            "api key has withdrawal permission", int(time.time() * 1000), "btc-live"))
        alert = await fake_telegram.wait_for_message(lambda m: "Pre-flight FAIL" in m.text,
                                                     within=20)
        assert "withdrawal permission" in alert.text
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode()
    assert proc.returncode == 0, text[-2000:]
    assert fake_telegram.token.split(":", 1)[1] not in text
    assert "polling Telegram" in text
    assert "commands act on local desired state in Redis" in text
