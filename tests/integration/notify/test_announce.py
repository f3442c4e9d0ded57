"""Kill-switch changes made elsewhere (API, kubectl via the operator's mirror) are
announced in the chat, once, even if they happened while the notifier was down."""

from __future__ import annotations

import redis.asyncio as aioredis

from kubetrade.notify.announce import EmergencyAnnouncer
from kubetrade.state.desired import LocalDesiredState
from tests.fakes.telegram import FakeTelegram
from tests.integration.notify.conftest import GROUP, KEYS, OWNER, StartNotifier


async def test_changes_by_the_api_are_announced_and_telegram_ones_not_repeated(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    desired = LocalDesiredState(redis_client, KEYS)
    await desired.set_emergency("stop", "api:admin", "exchange incident")
    engaged = await fake_telegram.wait_for_message(lambda m: "Emergency STOP engaged" in m.text)
    assert engaged.chat_id == GROUP
    assert "by api:admin — exchange incident" in engaged.text

    await fake_telegram.deliver_command("/resume", GROUP, OWNER)  # from Telegram: not echoed
    await fake_telegram.wait_for_message(lambda m: "Trading resumed by telegram" in m.text)
    await desired.set_emergency("close-all", "kubectl:alice", "")
    await fake_telegram.wait_for_message(lambda m: "Emergency CLOSE-ALL engaged" in m.text)
    texts = [m.text for m in fake_telegram.messages]
    assert not any("Emergency cleared" in t for t in texts)
    assert sum("Emergency STOP engaged" in t for t in texts) == 1


async def test_a_change_made_while_the_notifier_was_down_is_announced_once(
    redis_client: aioredis.Redis, fake_telegram: FakeTelegram, start_notifier: StartNotifier
) -> None:
    await LocalDesiredState(redis_client, KEYS).set_emergency("stop", "api:admin", "night")
    notifier = await start_notifier()
    await fake_telegram.wait_for_message(lambda m: "Emergency STOP engaged" in m.text)
    # a restarted notifier (same Redis) does not announce it again
    again = EmergencyAnnouncer(redis_client, KEYS)
    assert await again.check_once() is None
    assert notifier.announcer.announced == 1


async def test_a_fresh_install_trading_normally_announces_nothing(
    redis_client: aioredis.Redis,
) -> None:
    await LocalDesiredState(redis_client, KEYS).set_emergency("none", "local", "seed")
    announcer = EmergencyAnnouncer(redis_client, KEYS)
    assert await announcer.check_once() is None
    assert await redis_client.xlen(KEYS.alerts) == 0
