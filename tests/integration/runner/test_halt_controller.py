"""HaltController through a paper runner and a real Redis: each person-made halt is
kept by source and written beside the engine snapshot in the same commit; a restart
finds them there (or, for a snapshot written before they were kept, in the halt's
text), so the change that lifts one lifts exactly that one."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from kubetrade.runner.core import Runner
from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.runner.halts import SNAPSHOT_KEY, HaltSource
from kubetrade.state.client import connect
from kubetrade.state.desired import write_emergency
from kubetrade.state.keys import Keys
from tests.integration.runner.paper_runner import paper_runner, sma_manifest

NAME = "halty"
MANIFEST = sma_manifest(NAME, 5, 20)


async def _runner(redis: Redis, keys: Keys) -> Runner:
    return await paper_runner(redis, keys, MANIFEST)


async def _stored(redis: Redis, keys: Keys) -> dict[str, Any]:
    raw: Any = await redis.get(keys.engine(NAME))
    snapshot: dict[str, Any] = json.loads(raw)
    return snapshot


async def test_sources_are_stored_with_the_snapshot_and_lifted_one_by_one(
    redis_client: Redis,
) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    first = await _runner(redis_client, keys)
    await first.set_enabled(False, "dashboard")
    await first.apply_emergency(EmergencyCommand("stop", 1, "ops", "drill", "redis"))
    snapshot = await _stored(redis_client, keys)
    assert snapshot[SNAPSHOT_KEY] == {"disabled": "spec.enabled is false",
                                      "emergency-stop": "stop by ops: drill"}
    assert first.engine.halted_reason == (
        "manual: disabled: spec.enabled is false; emergency: stop by ops: drill")

    restarted = await _runner(redis_client, keys)
    assert restarted.halts.manual == {HaltSource.DISABLED: "spec.enabled is false",
                                      HaltSource.EMERGENCY_STOP: "stop by ops: drill"}
    await restarted.apply_emergency(EmergencyCommand("none", 2, "ops", "", "redis"))
    assert restarted.engine.is_halted  # still disabled
    assert (await _stored(redis_client, keys))[SNAPSHOT_KEY] == {
        "disabled": "spec.enabled is false"}
    await restarted.set_enabled(True, "dashboard")
    assert not restarted.engine.is_halted
    assert (await _stored(redis_client, keys))[SNAPSHOT_KEY] == {}


async def test_snapshot_without_sources_is_read_from_the_halt_text(
    redis_client: Redis,
) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    first = await _runner(redis_client, keys)
    await first.apply_emergency(EmergencyCommand("close-all", 1, "ops", "drill", "redis"))
    snapshot = await _stored(redis_client, keys)
    del snapshot[SNAPSHOT_KEY]  # as a runner before this change wrote it
    await redis_client.set(keys.engine(NAME), json.dumps(snapshot))

    restarted = await _runner(redis_client, keys)
    assert restarted.halts.manual == {HaltSource.EMERGENCY_CLOSE_ALL: "close-all by ops: drill"}
    await restarted.apply_emergency(EmergencyCommand("none", 2, "ops", "", "redis"))
    assert not restarted.engine.is_halted


async def test_a_tracker_pause_is_said_in_status_and_ended_by_a_person_enabling(
    redis_client: Redis,
) -> None:
    """A strategy the tracker disabled no longer reads as running with no reason, and the
    dashboard's toggle (off, then on) ends the pause: the tracker's docstring promises a
    person can re-enable it at any time."""
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    runner = await _runner(redis_client, keys)
    runner.engine.tracker.max_losses = 2
    for ts in (1, 2):
        runner.engine.tracker.on_trade(Decimal(-1), ts)
    assert not runner.engine.tracker.enabled
    await runner.outputs.write_summary(runner.engine, breaker_open=False)
    reason = str(await redis_client.hget(keys.summary(NAME), "halted_reason"))
    assert reason.startswith(
        "disabled by the strategy tracker after 2 losing trades in a row"), reason
    await runner.set_enabled(False, "dashboard")
    await runner.set_enabled(True, "dashboard")
    assert runner.engine.tracker.enabled
    assert await redis_client.hget(keys.summary(NAME), "halted_reason") in ("", None)



async def test_a_stop_that_arrives_as_redis_answers_is_not_lost(redis_url: str) -> None:
    """The runner's task cancelled (SIGTERM) just as Redis answers the emergency read a
    Kubernetes ``none`` makes it do: Python 3.11's ``asyncio.wait_for`` returned the
    answer and dropped the cancellation (CPython gh-86296), and the runner went on
    until a second signal. The cancellation must reach the runner's next await. Redis
    holds the stop (written through Redis while the resource could not be), so the
    runner also stays halted."""
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    redis = connect(redis_url)  # the runner's own kind of client
    try:
        runner = await _runner(redis, keys)
        await write_emergency(redis, keys, "stop", "ops", "drill")
        await runner.apply_emergency(EmergencyCommand("stop", 1, "ops", "drill", "redis"))
        read = runner.store.read_emergency
        told_to_stop: list[asyncio.Task[str]] = []

        async def read_as_sigterm_arrives() -> dict[str, Any]:
            state = await read()
            told_to_stop[0].cancel()
            return state

        runner.store.read_emergency = read_as_sigterm_arrives  # type: ignore[method-assign]

        async def kubernetes_says_none() -> str:
            await runner.apply_emergency(EmergencyCommand("none", 2, "ops", "", "kubernetes"))
            await asyncio.sleep(0)  # the runner's next await
            return "ran on"

        told_to_stop.append(asyncio.create_task(kubernetes_says_none()))
        with pytest.raises(asyncio.CancelledError):
            await told_to_stop[0]
        assert runner.engine.is_halted
    finally:
        await redis.aclose()


async def test_a_persons_resume_lifts_the_max_drawdown_halt(redis_client: Redis) -> None:
    """The max-drawdown halt holds "until a person resumes": the dashboard's, the API's
    or Telegram's resume, with no stop in force, lifts it (before, it answered 'applied'
    and the strategy stayed halted: a new-user trial). The state read at start and the
    operator's 'none' when the Emergency is deleted do not."""
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    runner = await _runner(redis_client, keys)
    await runner.update_limits(runner.limits.model_copy(
        update={"max_drawdown_pct": Decimal("0.01"), "stop_loss_pct": Decimal(0)}), "test")
    candles = runner.market.candles(runner.cursor)
    for _ in range(1440):
        symbol, candle = await anext(candles)
        await runner.process_candle(symbol, candle)
        if "max_drawdown" in runner.engine.halts:
            break
    assert "max_drawdown" in runner.engine.halts
    await runner.apply_emergency(EmergencyCommand("none", 1, "", "", "start"))
    await runner.apply_emergency(EmergencyCommand("none", 2, "kubernetes",
                                                  "Emergency deleted", "redis"))
    assert "max_drawdown" in runner.engine.halts
    await runner.apply_emergency(EmergencyCommand("none", 3, "api:admin", "", "redis"))
    assert not runner.engine.is_halted
    # what a restart restores: the lift is committed with the engine
    assert "max_drawdown" not in (await _stored(redis_client, keys))["halts"]
