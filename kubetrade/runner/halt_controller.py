"""Person-made halts applied: emergency stop / close-all / resume, a Strategy disabled
or re-enabled, a Strategy deleted with ``closePositionsOnDelete``.

Each change sets or clears one ``HaltSource`` in the ``HaltBook``; the engine's manual
halt follows the book (held while any person-made source is, lifted when none is),
and the snapshot committed carries the sources, so a restart knows them.

Emergency commands reach the runner twice (Redis and the Emergency resource) and at
start; an action is applied once per change. ``none`` resumes only on a real
transition from stop/close-all (this runner's last acknowledged action, kept in Redis
across restarts): the first event of a watch, or the state read at start, says
``none`` too, and treating that as a resume would lift a max-drawdown halt restored
from the snapshot, which only a person may lift.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.emergency import HALTING_ACTIONS, EmergencyAction
from kubetrade.domain.engine import HALT_MANUAL, TradingEngine
from kubetrade.domain.halts import HALT_DRAWDOWN
from kubetrade.logs import get_logger
from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.runner.halts import HaltBook, HaltSource
from kubetrade.runner.orders import OrderRouter
from kubetrade.runner.outputs import OutputPort
from kubetrade.state.client import RedisError
from kubetrade.state.store import Changes, StateStore

#: Who writes ``none`` without a person asking: the operator when the Emergency object
#: is deleted (a runner's own start and watch events have their own ``source``).
MACHINE_ACTORS = frozenset({"", "kubernetes"})


def _asked_by_a_person(cmd: EmergencyCommand) -> bool:
    """A new change written by a person (API, dashboard, Telegram; in process or through
    Redis), not the state read at start or the first event of a Kubernetes watch."""
    return cmd.source in ("local", "redis") and cmd.by not in MACHINE_ACTORS


#: How long to wait for Redis when deciding whether it still holds a stop (seconds).
REDIS_EMERGENCY_TIMEOUT_S = 2.0


@dataclass(eq=False)
class HaltController:
    """Applies person-made halts to the book, the engine and the open orders."""

    name: InitVar[str]
    engine: TradingEngine
    _: KW_ONLY
    halts: HaltBook
    router: OrderRouter
    store: StateStore
    outputs: OutputPort
    clock: Clock
    lock: asyncio.Lock
    #: The emergency action this runner last applied: a later ``none`` is a resume
    #: only when it follows a stop/close-all.
    last_emergency: str | None = None
    #: the Emergency generation this runner last acknowledged
    acked_generation: int | None = field(default=None, init=False)
    ack_owed: bool = field(default=False, init=False)  # applied, ack not written (Redis down)
    log: Any = field(init=False)

    def __post_init__(self, name: str) -> None:
        self.log = get_logger("kubetrade.runner", strategy=name, mode=self.outputs.mode)

    def restore(self, snapshot: Mapping[str, Any] | None) -> None:
        """At start: which person-made sources hold the engine's manual halt, so the
        change that lifts one after a restart (re-enabled, emergency resumed while
        down) finds it."""
        manual = self.engine.halts.get(HALT_MANUAL)
        self.halts.restore_manual(snapshot or {}, manual.reason if manual else None)
        if self.halts.emergency is not None and self.last_emergency not in HALTING_ACTIONS:
            # halted by an emergency, ack not yet written
            self.last_emergency = EmergencyAction.STOP.value

    async def set_halt(self, source: HaltSource, reason: str | None, by: str) -> None:
        """Add (``reason``) or clear (None) one source and bring the engine in line."""
        self.halts.set(source, reason)
        if self.halts.manual:
            self.engine.halt(self.halts.text(), by)
        elif self.engine.is_halted:
            self.engine.resume(by)
        self.outputs.set_halted(self.engine.is_halted)
        await self.outputs.drain(self.engine)
        await self.store.commit(Changes(engine_snapshot=self.router.snapshot()))
        await self._summary()

    async def _summary(self) -> None:
        await self.outputs.write_summary(self.engine, breaker_open=self.halts.breaker_open)

    # ---- emergency ----------------------------------------------------------------------
    async def apply_emergency(self, cmd: EmergencyCommand) -> None:
        """Stop / close-all / resume, once per change of action (see module doc)."""
        async with self.lock:
            if (cmd.action == EmergencyAction.NONE and _asked_by_a_person(cmd)
                    and self.last_emergency not in HALTING_ACTIONS
                    and HALT_DRAWDOWN in self.engine.halts):
                # no stop to lift: the resume a person asked for is the max-drawdown
                # halt's "until a person resumes" (a disabled strategy stays halted)
                self.log.warning("emergency.resume_lifts_drawdown", by=cmd.by,
                                 source=cmd.source)
                self.last_emergency = cmd.action
                await self.set_halt(HaltSource.EMERGENCY_STOP, None, cmd.by)
                await self._ack(cmd, [])
                return
            # ack_owed: the last apply broke off (Redis down mid-way): redo it whole
            if cmd.action == self.last_emergency and cmd.source != "start" \
                    and not self.ack_owed:
                if cmd.generation is not None and cmd.generation != self.acked_generation:
                    # same action, a new change of the Emergency: acknowledge it too
                    await self._ack(cmd, [])
                return
            if cmd.action == EmergencyAction.NONE and cmd.source == "kubernetes" \
                    and await self._redis_holds_emergency():
                # The resource says none but Redis says stop: a stop delivered through
                # Redis while the resource could not be written. The older of the two
                # must not resume trading; a real resume reaches Redis too.
                self.log.warning("emergency.none_ignored", source=cmd.source,
                                 note="Redis still holds stop/close-all")
                return
            previous = self.last_emergency
            self.last_emergency = cmd.action
            self.ack_owed = True
            if cmd.action == EmergencyAction.NONE and previous not in HALTING_ACTIONS:
                self.log.info("emergency.none_observed", by=cmd.by, source=cmd.source,
                              note="no stop/close-all to lift; halts stay as they are")
                await self._ack(cmd, [])
                return
            self.log.warning(
                "emergency", action=cmd.action, by=cmd.by, reason=cmd.reason, source=cmd.source
            )
            cancelled = await self._emergency_halt(cmd)
            self.outputs.emergency_applied(cmd.action)
            await self._ack(cmd, cancelled)
            await self.outputs.audit(
                f"emergency.{cmd.action}.applied",
                {"by": cmd.by, "reason": cmd.reason, "source": cmd.source,
                 "cancelled": cancelled},
            )
            await self._summary()

    async def _ack(self, cmd: EmergencyCommand, cancelled: list[str]) -> None:
        """Acknowledge ``cmd`` as this pod, naming the change (generation, since_ms)."""
        self.ack_owed = True
        await self.store.ack_emergency(
            cmd.action, self.clock.now_ms(), cancelled,
            generation=cmd.generation, since_ms=cmd.since_ms, pod=os.environ.get("POD_NAME"),
        )
        self.acked_generation = cmd.generation
        self.ack_owed = False

    async def _emergency_halt(self, cmd: EmergencyCommand) -> list[str]:
        """Lift (``none``) or set the emergency source; a halt cancels the open orders
        and close-all sells every position too. The client ids cancelled."""
        if cmd.action == EmergencyAction.NONE:
            source = self.halts.emergency or HaltSource.EMERGENCY_STOP
            await self.set_halt(source, None, cmd.by or "emergency")
            return []
        await self.set_halt(
            HaltSource.emergency(cmd.action),
            f"{cmd.action} by {cmd.by}: {cmd.reason}".strip(), cmd.by,
        )
        cancelled = await self.router.cancel_open()
        if cmd.action == EmergencyAction.CLOSE_ALL:
            await self.router.sell_everything()
        return cancelled

    async def _redis_holds_emergency(self) -> bool:
        """Does Redis hold stop/close-all? False when Redis cannot answer: the Kubernetes
        path must work while Redis is down."""
        try:
            async with asyncio.timeout(REDIS_EMERGENCY_TIMEOUT_S):
                state = await self.store.read_emergency()
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.warning("emergency.redis_unreadable", error=str(exc))
            return False
        return state.get("action") in HALTING_ACTIONS

    # ---- desired state ---------------------------------------------------------------------
    async def set_enabled(self, enabled: bool, by: str) -> None:
        """``spec.enabled`` changed: disabling halts and cancels open orders; enabling
        (false -> true, a person's act) also ends a pause by the strategy tracker."""
        async with self.lock:
            if enabled == (not self.halts.holds(HaltSource.DISABLED)):
                return
            self.log.warning("strategy.enabled" if enabled else "strategy.disabled", by=by)
            if enabled:
                self.engine.enable_strategy(by)
            await self.set_halt(HaltSource.DISABLED,
                                None if enabled else "spec.enabled is false", by)
            if not enabled:
                await self.router.cancel_open()
            await self.outputs.audit("strategy.enabled" if enabled else "strategy.disabled",
                                     {"by": by})

    async def close_positions(self, reason: str, by: str) -> None:
        """Halt, cancel open orders and sell every position (Strategy deleted with
        ``closePositionsOnDelete``); the operator waits for the positions to be gone."""
        async with self.lock:
            await self.set_halt(HaltSource.DELETING, reason, by)
            cancelled = await self.router.cancel_open()
            await self.router.sell_everything()
            await self.outputs.audit("strategy.positions_closed",
                                     {"by": by, "reason": reason, "cancelled": cancelled})
            await self._summary()
