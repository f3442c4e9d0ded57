"""The kill switch's kept halt (a stop accepted while Redis could not be written) on a
real Redis: it waits in its file, is written at the next start, and never overwrites a
newer change."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from kubetrade.cli._local.kept_halt import KeptHaltFile
from kubetrade.cli._local.kill_switch import LocalKillSwitch
from kubetrade.domain.clock import ManualClock
from kubetrade.state.keys import Keys


def _switch(redis: Redis, tmp_path: Path, now_ms: int) -> LocalKillSwitch:
    return LocalKillSwitch(redis, Keys("kt"), ManualClock(now_ms),
                           kept_file=KeptHaltFile(tmp_path))


async def test_a_kept_stop_is_written_at_the_next_start(
    redis_client: Redis, tmp_path: Path
) -> None:
    KeptHaltFile(tmp_path).save({"action": "stop", "since_ms": 1000, "by": "alice",
                                 "reason": "redis hung"})
    switch = _switch(redis_client, tmp_path, 2000)
    await switch.restore_kept()
    async with asyncio.timeout(10):
        await switch.settled()  # runners start only after this
    assert (await switch.get_emergency())["action"] == "stop"
    assert KeptHaltFile(tmp_path).load() is None  # Redis holds it now
    await switch.aclose()


async def test_a_newer_change_is_never_overwritten_by_an_older_kept_halt(
    redis_client: Redis, tmp_path: Path
) -> None:
    # a close-all written while an older kept stop waits: the stop must not follow it
    # (it would turn close-all back into stop)
    switch = _switch(redis_client, tmp_path, 2000)
    switch._keep({"action": "stop", "since_ms": 1000, "by": "alice", "reason": "kept"})
    await switch.set_emergency("close-all", "bob", "newer")
    async with asyncio.timeout(10):
        await switch.settled()
    assert (await switch.get_emergency())["action"] == "close-all"
    assert KeptHaltFile(tmp_path).load() is None
    # and at the next start, a file older than what Redis holds is dropped
    KeptHaltFile(tmp_path).save({"action": "stop", "since_ms": 1000, "by": "alice",
                                 "reason": "stale file"})
    again = _switch(redis_client, tmp_path, 3000)
    await again.restore_kept()
    assert (await again.get_emergency())["action"] == "close-all"
    assert KeptHaltFile(tmp_path).load() is None
    await switch.aclose()
    await again.aclose()
