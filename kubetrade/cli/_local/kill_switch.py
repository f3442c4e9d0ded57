"""The kill switch of ``kubetrade local`` does not depend on Redis being up.

Runners, API and notifier share one process, so a stop or close-all is handed to every
runner in the process *at once* (their halt is in memory first), and then written to
Redis. When Redis cannot be written (it is down), the request is kept and written by a
background task as soon as Redis answers again (retrying with backoff forever), and
until then :meth:`LocalKillSwitch.get_emergency` answers the kept state and
:meth:`LocalKillSwitch.settled` holds back any runner (re)start, so no runner starts
trading from the older state in Redis. A resume needs Redis (it is not kept: the
older stop must never be lifted by a resume that may not last).

The API's answer says what happened (``note``): applied in process to which runners,
and whether it is written yet. A Redis that hangs (a stopped process, a full disk)
delays the answer by about ``REDIS_WAIT_S``, not by its socket timeouts: the write to
Redis runs beside the runners' applies and is kept for the background writer when it
does not answer in time, and a runner whose halt already holds in memory counts as
applied while its own Redis writes go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.emergency import REDIS_WAIT_S
from kubetrade.logs import get_logger
from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.state.client import RedisError
from kubetrade.state.desired import LocalDesiredState, write_emergency

log = get_logger("kubetrade.local")

Handler = Callable[[EmergencyCommand], Coroutine[Any, Any, None]]
#: Whether a runner's halt for the action (stop/close-all) holds in memory already.
HaltedProbe = Callable[[str], bool]
HALTS = ("stop", "close-all")
#: Seconds one in-process apply may take (a runner mid-candle holds its lock).
APPLY_TIMEOUT_S = 10.0
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0


class LocalKillSwitch(LocalDesiredState):
    """:class:`LocalDesiredState` whose halts reach the process' runners directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runners: dict[str, tuple[Handler, HaltedProbe | None]] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # applies past the answer
        self._kept: dict[str, Any] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()

    def register(self, name: str, handler: Handler, halted: HaltedProbe | None = None) -> None:
        """Runner ``name`` takes in-process emergencies through ``handler``; ``halted``
        tells whether its halt holds in memory while ``handler`` still writes."""
        self._runners[name] = (handler, halted)

    def unregister(self, name: str) -> None:
        self._runners.pop(name, None)

    async def settled(self) -> None:
        """Return once no halt is waiting to be written to Redis."""
        await self._settled.wait()

    async def get_emergency(self) -> dict[str, Any]:
        if self._kept is not None:
            return dict(self._kept)
        return await super().get_emergency()

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]:
        if action not in HALTS:
            state = await super().set_emergency(action, actor, reason)
            applied = await self._apply(state)
            return {**state, "note": _note(applied, written=True)}
        now = self.clock.now_ms()
        state = {"action": action, "since_ms": now, "by": actor, "reason": reason}
        # both at once: neither the runners nor the answer wait on a Redis that hangs
        applying = asyncio.create_task(self._apply(state))
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                state = await self._write(state)
        except (RedisError, OSError, TimeoutError) as exc:
            log.error("local.emergency_kept", action=action, error=str(exc) or type(exc).__name__,
                      note="Redis is unreachable: applied in process, written when it returns")
            self._keep(state)
            return {**state, "note": _note(await applying, written=False)}
        return {**state, "note": _note(await applying, written=True)}

    async def _apply(self, state: dict[str, Any]) -> list[str]:
        """Hand ``state`` to every registered runner at once (concurrently, each within
        ``APPLY_TIMEOUT_S``); the names that took it. A runner whose apply breaks off
        writing to Redis is halted already (in memory first)."""
        cmd = EmergencyCommand(str(state["action"]), int(state["since_ms"]),
                               str(state["by"]), str(state["reason"]), source="local")
        names = list(self._runners)
        results = await asyncio.gather(
            *(self._apply_one(n, *self._runners[n], cmd) for n in names)
        )
        return [n for n, ok in zip(names, results, strict=True) if ok]

    async def _apply_one(self, name: str, handler: Handler, halted: HaltedProbe | None,
                         cmd: EmergencyCommand) -> bool:
        """Whether runner ``name`` took ``cmd``: its apply ended, or (a halt) it holds
        in memory after ``REDIS_WAIT_S`` while the apply's Redis writes go on."""
        task = asyncio.create_task(handler(cmd), name=f"emergency-{name}")
        done, _ = await asyncio.wait({task}, timeout=REDIS_WAIT_S)
        if not done and halted is not None and cmd.action in HALTS and halted(cmd.action):
            log.warning("local.emergency_applied_writing", strategy=name,
                        note="halted in memory; its Redis writes are still waiting")
            self._finishing.add(task)
            task.add_done_callback(lambda t: self._finished(name, t))
            return True
        if not done:
            done, _ = await asyncio.wait({task}, timeout=APPLY_TIMEOUT_S - REDIS_WAIT_S)
        if not done:  # its lock was held; Redis' path reaches it
            task.cancel()
            log.error("local.emergency_apply_timeout", strategy=name, timeout_s=APPLY_TIMEOUT_S)
            return False
        return _took(name, task)

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        self._finishing.discard(task)
        if not task.cancelled():
            _took(name, task)

    async def _write(self, state: dict[str, Any]) -> dict[str, Any]:
        """Write ``state`` as set when it was requested (its ``since_ms``), the time the
        runners' in-process acknowledgements name."""
        return await write_emergency(
            self.redis, self.keys, str(state["action"]), str(state["by"]),
            str(state["reason"]), ManualClock(int(state["since_ms"])),
        )

    def _keep(self, state: dict[str, Any]) -> None:
        self._kept = state
        self._settled.clear()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_when_back(), name="emergency-writer")

    async def _write_when_back(self) -> None:
        delay = RETRY_MIN_S
        while self._kept is not None:
            kept = self._kept
            try:
                await self._write(kept)
            except (RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            log.warning("local.emergency_written", action=kept["action"],
                        note="the stop kept during the Redis outage is written")
            if self._kept is kept:
                self._kept = None
        self._settled.set()

    async def aclose(self) -> None:
        """Stop the writer (a kept halt not yet written is logged as lost)."""
        if self._kept is not None:
            log.error("local.emergency_unwritten_at_exit", action=self._kept["action"])
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for task in list(self._finishing):
            task.cancel()


def _took(name: str, task: asyncio.Task[None]) -> bool:
    """Whether an ended apply took: it returned, or broke off writing to Redis (halted
    in memory first); anything else is a bug, logged (Redis' path still reaches it)."""
    exc = task.exception()
    if exc is None:
        return True
    if isinstance(exc, RedisError | OSError):
        log.warning("local.emergency_applied_unwritten", strategy=name, error=str(exc))
        return True
    log.error("local.emergency_apply_failed", strategy=name, error=repr(exc))
    return False


def _note(applied: list[str], written: bool) -> str:
    who = ", ".join(applied) if applied else "no runner"
    if written:
        return f"applied in this process to {len(applied)} runner(s) ({who}); written to Redis"
    return (f"Redis is unreachable: applied in this process to {len(applied)} runner(s) "
            f"({who}); it will be written to Redis when Redis answers again")
