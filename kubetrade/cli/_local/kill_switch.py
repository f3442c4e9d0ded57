"""The kill switch of ``kubetrade local`` does not depend on Redis being up.

Runners, API and notifier share one process, so a stop or close-all is handed to every
runner in the process *at once* (their halt is in memory first), and then written to
Redis. When Redis cannot be written (it is down), the request is kept and written by a
background task as soon as Redis answers again (retrying with backoff forever), and
until then :meth:`LocalKillSwitch.get_emergency` answers the kept state and
:meth:`LocalKillSwitch.settled` holds back any runner (re)start, so no runner starts
trading from the older state in Redis. The kept halt is also in a file
(:mod:`.kept_halt`) until Redis has it, so a process stopped or crashed before then
writes it at its next start, before any runner trades. A resume needs Redis (it is not kept: the
older stop must never be lifted by a resume that may not last).

The API's answer says what happened (``note``): applied in process to which runners,
and whether it is written yet. A Redis that hangs (a stopped process, a full disk)
delays the answer by about ``REDIS_WAIT_S``, not by its socket timeouts: the write to
Redis runs beside the runners' applies and is kept for the background writer when it
does not answer in time, a runner whose halt already holds in memory counts as
applied while its own Redis writes go on, and one busy with a candle (its lock held,
waiting on Redis itself) is named as taking the change when that candle ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from kubetrade.cli._local.kept_halt import KeptHaltFile
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
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0


class LocalKillSwitch(LocalDesiredState):
    """:class:`LocalDesiredState` whose halts reach the process' runners directly."""

    def __init__(self, *args: Any, kept_file: KeptHaltFile | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept_file = kept_file
        self._runners: dict[str, tuple[Handler, HaltedProbe | None]] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # applies past the answer
        self._kept: dict[str, Any] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()
        # one emergency write at a time: the kept halt's writer checks, under it, that
        # no newer change was written before it writes (close-all must not become stop)
        self._write_lock = asyncio.Lock()

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
            try:
                async with asyncio.timeout(REDIS_WAIT_S), self._write_lock:
                    state = await super().set_emergency(action, actor, reason)
                    self._drop_kept()  # the person's later resume wins over a kept halt
            except TimeoutError:
                raise RedisError(f"Redis did not answer within {REDIS_WAIT_S} s: a resume "
                                 "needs Redis; the stop stays in force") from None
            applied, busy = await self._apply(state)
            return {**state, "note": _note(applied, busy, written=True)}
        now = self.clock.now_ms()
        state = {"action": action, "since_ms": now, "by": actor, "reason": reason}
        # both at once: neither the runners nor the answer wait on a Redis that hangs
        applying = asyncio.create_task(self._apply(state))
        try:
            async with asyncio.timeout(REDIS_WAIT_S), self._write_lock:
                state = await self._write(state)
                self._drop_kept()  # written: an older kept halt must not follow it
        except (RedisError, OSError, TimeoutError) as exc:
            log.error("local.emergency_kept", action=action, error=str(exc) or type(exc).__name__,
                      note="Redis is unreachable: applied in process, written when it returns")
            self._keep(state)
            return {**state, "note": _note(*await applying, written=False)}
        return {**state, "note": _note(*await applying, written=True)}

    async def _apply(self, state: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Hand ``state`` to every registered runner at once; (the names that took it,
        the names still busy with a candle after ``REDIS_WAIT_S``: they take it when
        their candle ends). A runner whose apply breaks off writing to Redis is halted
        already (in memory first)."""
        cmd = EmergencyCommand(str(state["action"]), int(state["since_ms"]),
                               str(state["by"]), str(state["reason"]), source="local")
        names = list(self._runners)
        results = await asyncio.gather(
            *(self._apply_one(n, *self._runners[n], cmd) for n in names)
        )
        return ([n for n, r in zip(names, results, strict=True) if r == "applied"],
                [n for n, r in zip(names, results, strict=True) if r == "busy"])

    async def _apply_one(self, name: str, handler: Handler, halted: HaltedProbe | None,
                         cmd: EmergencyCommand) -> str:
        """``applied`` when runner ``name`` took ``cmd`` (its apply ended, or a halt holds
        in memory while its Redis writes go on), ``busy`` when it has not after
        ``REDIS_WAIT_S`` (a candle holds its lock: the apply goes on and takes it when
        the candle ends), ``failed`` when the apply broke (a bug; Redis' path reaches
        it)."""
        task = asyncio.create_task(handler(cmd), name=f"emergency-{name}")
        done, _ = await asyncio.wait({task}, timeout=REDIS_WAIT_S)
        if done:
            return "applied" if _took(name, task) else "failed"
        self._finishing.add(task)
        task.add_done_callback(lambda t: self._finished(name, t))
        if halted is not None and cmd.action in HALTS and halted(cmd.action):
            log.warning("local.emergency_applied_writing", strategy=name,
                        note="halted in memory; its Redis writes are still waiting")
            return "applied"
        log.warning("local.emergency_apply_busy", strategy=name,
                    note="its current candle holds it; it takes the change when it ends")
        return "busy"

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
        if self.kept_file is not None:
            try:
                self.kept_file.save(state)
            except OSError as exc:
                log.error("local.emergency_kept_file_failed", file=str(self.kept_file.path),
                          error=str(exc), note="kept in memory only: lost if the process ends")
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_when_back(), name="emergency-writer")

    def _drop_kept(self) -> None:
        self._kept = None
        if self.kept_file is not None:
            self.kept_file.clear()
        self._settled.set()

    async def restore_kept(self) -> None:
        """At start: a halt kept by an earlier process that ended before Redis had it is
        kept again (runners start after it is written), unless Redis already holds a
        change as new or newer."""
        state = self.kept_file.load() if self.kept_file is not None else None
        if state is None:
            return
        current = await super().get_emergency()
        if int(current.get("since_ms") or 0) >= int(state["since_ms"]):
            self._drop_kept()
            return
        log.warning("local.emergency_kept_restored", action=state["action"],
                    since_ms=state["since_ms"], file=str(self.kept_file.path)
                    if self.kept_file is not None else None,
                    note="accepted while Redis could not be written, before the last exit")
        self._keep(state)

    async def _write_when_back(self) -> None:
        delay = RETRY_MIN_S
        while self._kept is not None:
            kept = self._kept
            try:
                async with self._write_lock:
                    if self._kept is not kept:  # a newer change was written meanwhile
                        continue
                    await self._write(kept)
            except (RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            log.warning("local.emergency_written", action=kept["action"],
                        note="the stop kept during the Redis outage is written")
            if self._kept is kept:
                self._drop_kept()
        self._settled.set()

    async def aclose(self) -> None:
        """Stop the writer; a kept halt not yet written is written one last time (within
        ``REDIS_WAIT_S``), or stays in its file for the next start."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        kept = self._kept
        if kept is not None:
            try:
                async with asyncio.timeout(REDIS_WAIT_S), self._write_lock:
                    await self._write(kept)
                    self._drop_kept()
            except (RedisError, OSError, TimeoutError):
                where = str(self.kept_file.path) if self.kept_file is not None else None
                log.error("local.emergency_unwritten_at_exit", action=kept["action"],
                          kept_in=where, note="written to Redis at the next start"
                          if where else "lost: no file to keep it in")
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


def _note(applied: list[str], busy: list[str], written: bool) -> str:
    who = ", ".join(applied) if applied else "no runner"
    done = f"applied in this process to {len(applied)} runner(s) ({who})"
    if busy:
        done += (f"; {len(busy)} runner(s) ({', '.join(busy)}) take it when the candle "
                 "they are processing ends")
    if written:
        return f"{done}; written to Redis"
    return (f"Redis is unreachable: {done}; it will be written to Redis when Redis "
            "answers again")
