"""The runner's durable state in Redis.

A runner may be killed (SIGKILL, OOM, node loss) between any two instructions. The
rule that keeps it safe: every change a decision or a fill causes is written in ONE
``MULTI``/``EXEC`` transaction (:meth:`StateStore.commit`), so Redis holds either the
state before the change or the state after it, never half of it. Orders are written
with status CREATED *before* they are sent, so after a crash the runner knows which
client order ids it may have sent and looks them up on the exchange before doing
anything else.

What is stored (keys from :class:`kubetrade.state.keys.Keys`):

- ``orders`` hash: client_order_id -> order JSON (``to_dict`` form).
- ``positions`` hash: symbol -> position JSON; rewritten whole in each commit, so it is
  always the projection of the engine snapshot written in the same transaction.
- ``fills`` set: exchange trade ids already applied (idempotence across restarts).
- ``trades`` streams (per strategy and global): one entry per closed trade; fields are
  the ``ClosedTrade`` JSON fields as strings (``None`` as ``""``).
- ``equity`` stream: fields ``ts`` and ``equity``.
- ``summary`` hash: phase, equity, pnl, trades, win_rate, open_positions, updated_ms,
  halted_reason (plus whatever else the engine's summary reports).
- ``engine`` string: the engine snapshot JSON (authoritative for restore).
- ``paper`` string (``keys.paper_broker(name)``): the paper broker snapshot, written
  in the same transaction as the engine snapshot so paper trading resumes exactly.
- ``cursor`` hash (``keys.candle_cursor(name)``): symbol -> open time of the last
  candle decided on, written with the decision so a candle is never decided twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from kubetrade.domain.models import ClosedTrade, Fill, Order, Position, from_dict, to_dict
from kubetrade.state.keys import Keys
from kubetrade.state.schema import (
    EmergencyAck,
    EmergencyState,
    ReconciliationBaseline,
    ReconciliationRecord,
    dumps,
    summary_hash,
)


class Superseded(RuntimeError):
    """Another runner of this strategy claimed it after this one (``holder``: who, as
    far as it said): this one must stop trading, or both would send the same orders."""

    def __init__(self, name: str, holder: dict[str, Any]) -> None:
        by = ", ".join(f"{k} {holder[k]}" for k in ("host", "pid", "started_ms")
                       if k in holder) or "another runner"
        super().__init__(f"{name}: another runner of this strategy started ({by}); this "
                         "one stops: two runners of one strategy would both trade")
        self.holder = holder


TRADES_MAXLEN = 1_000_000
EQUITY_MAXLEN = 200_000


_dumps = dumps


def trade_fields(trade: ClosedTrade) -> dict[str, str]:
    """Stream fields of a closed trade: every value a string, ``None`` as empty."""
    return {k: "" if v is None else str(v) for k, v in to_dict(trade).items()}


def trade_from_fields(fields: dict[str, str]) -> ClosedTrade:
    data: dict[str, Any] = {k: (v if v != "" else None) for k, v in fields.items()}
    for key in ("entry_ms", "exit_ms"):
        if data.get(key) is not None:
            data[key] = int(data[key])
    if data.get("exit_reason") is None:
        data["exit_reason"] = ""
    return from_dict(ClosedTrade, data)


@dataclass
class Changes:
    """Everything one step of the runner changes; written atomically by ``commit``."""

    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    closed_trades: list[ClosedTrade] = field(default_factory=list)
    engine_snapshot: dict[str, Any] | None = None
    positions: dict[str, Position] | None = None
    paper_snapshot: dict[str, Any] | None = None
    cursor: dict[str, int] = field(default_factory=dict)
    equity: tuple[int, Decimal] | None = None
    summary: dict[str, Any] | None = None

    def empty(self) -> bool:
        return not (
            self.orders
            or self.fills
            or self.closed_trades
            or self.engine_snapshot is not None
            or self.positions is not None
            or self.paper_snapshot is not None
            or self.cursor
            or self.equity is not None
            or self.summary is not None
        )


@dataclass
class RestoredState:
    """What a (re)starting runner finds in Redis."""

    engine_snapshot: dict[str, Any] | None
    paper_snapshot: dict[str, Any] | None
    orders: dict[str, Order]
    positions: dict[str, Position]
    fills_seen: set[str]
    cursor: dict[str, int]
    summary: dict[str, str]

    @property
    def fresh(self) -> bool:
        return self.engine_snapshot is None

    def pending_orders(self) -> list[Order]:
        """Orders whose fate the exchange knows better than we do (not terminal)."""
        return [o for o in self.orders.values() if not o.status.is_terminal]


class StateStore:
    """Durable state of one strategy's runner. Single writer: one runner per strategy."""

    def __init__(self, redis: Redis, keys: Keys, name: str) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        #: this runner's id once it claimed the strategy (:meth:`claim`); from then on
        #: every commit is refused (:class:`Superseded`) when another runner claimed it
        self.instance: str | None = None
        self._holder = ""

    async def claim(self, holder: dict[str, Any]) -> dict[str, Any] | None:
        """Make this process the strategy's one runner: ``holder`` (``id`` and what
        names the process: host, pid, started_ms) replaces whoever held it, and is
        checked by every later :meth:`commit`. Returns the previous holder (None when
        there was none): a runner still running there stops at its next commit."""
        self._holder = _dumps(holder)
        raw: Any = await self.redis.set(self.keys.runner_instance(self.name), self._holder,
                                        get=True)
        self.instance = str(holder["id"])
        return json.loads(raw) if raw else None

    async def _fence(self, pipe: Any) -> None:
        """WATCH the instance key and check it is still ours (see :meth:`claim`). A key
        gone (a Redis that restarted empty, a flush) is claimed again in the same
        transaction: nobody else holds it, and stopping would say something untrue."""
        key = self.keys.runner_instance(self.name)
        await pipe.watch(key)
        raw = await pipe.get(key)
        holder = json.loads(raw) if raw else None
        if holder is not None and holder.get("id") != self.instance:
            raise Superseded(self.name, holder)
        pipe.multi()
        if holder is None:
            pipe.set(key, self._holder)

    @property
    def paper_key(self) -> str:
        return self.keys.paper_broker(self.name)

    @property
    def cursor_key(self) -> str:
        return self.keys.candle_cursor(self.name)

    async def commit(self, changes: Changes) -> None:
        """Write ``changes`` in one MULTI/EXEC: all of it survives a crash, or none.
        After :meth:`claim`, only while this runner holds the claim (else
        :class:`Superseded`); a claim that changed between the check and EXEC is
        checked again (up to 3 times)."""
        if changes.empty():
            return
        for _ in range(3):
            async with self.redis.pipeline(transaction=True) as pipe:
                if self.instance is not None:
                    await self._fence(pipe)
                self._queue(pipe, changes)
                try:
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise Superseded(self.name, {})

    def _queue(self, pipe: Any, changes: Changes) -> None:
        """The writes of ``changes``, queued on ``pipe`` (a MULTI)."""
        k, name = self.keys, self.name
        pipe.sadd(k.strategies, name)
        if changes.orders:
            pipe.hset(
                k.orders(name),
                mapping={o.client_order_id: _dumps(to_dict(o)) for o in changes.orders},
            )
        if changes.fills:
            pipe.sadd(k.fills_seen(name), *[f.trade_id for f in changes.fills])
        for trade in changes.closed_trades:
            fields = trade_fields(trade)
            pipe.xadd(k.strategy_trades(name), fields, maxlen=TRADES_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.xadd(k.trades, fields, maxlen=TRADES_MAXLEN, approximate=True)  # type: ignore[arg-type]
        if changes.engine_snapshot is not None:
            pipe.set(k.engine(name), _dumps(changes.engine_snapshot))
        if changes.positions is not None:
            pipe.delete(k.positions(name))
            if changes.positions:
                pipe.hset(
                    k.positions(name),
                    mapping={s: _dumps(to_dict(p)) for s, p in changes.positions.items()},
                )
        if changes.paper_snapshot is not None:
            pipe.set(self.paper_key, _dumps(changes.paper_snapshot))
        if changes.cursor:
            pipe.hset(self.cursor_key, mapping={s: str(t) for s, t in changes.cursor.items()})
        if changes.equity is not None:
            ts, eq = changes.equity
            pipe.xadd(
                k.equity(name),
                {"ts": str(ts), "equity": str(eq)},
                maxlen=EQUITY_MAXLEN,
                approximate=True,
            )
        if changes.summary is not None:
            pipe.hset(k.summary(name), mapping=summary_hash(changes.summary))  # type: ignore[arg-type]

    async def fills_seen(self, trade_ids: list[str]) -> set[str]:
        """The subset of ``trade_ids`` already applied."""
        if not trade_ids:
            return set()
        flags = await self.redis.smismember(self.keys.fills_seen(self.name), trade_ids)  # type: ignore[misc]
        return {t for t, seen in zip(trade_ids, flags, strict=True) if seen}

    async def load(self) -> RestoredState:
        k, name = self.keys, self.name
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(k.engine(name))
            pipe.get(self.paper_key)
            pipe.hgetall(k.orders(name))
            pipe.hgetall(k.positions(name))
            pipe.smembers(k.fills_seen(name))
            pipe.hgetall(self.cursor_key)
            pipe.hgetall(k.summary(name))
            engine, paper, orders, positions, fills, cursor, summary = await pipe.execute()
        return RestoredState(
            engine_snapshot=json.loads(engine) if engine else None,
            paper_snapshot=json.loads(paper) if paper else None,
            orders={cid: from_dict(Order, json.loads(v)) for cid, v in orders.items()},
            positions={s: from_dict(Position, json.loads(v)) for s, v in positions.items()},
            fills_seen=set(fills),
            cursor={s: int(v) for s, v in cursor.items()},
            summary=dict(summary),
        )

    async def trades(self, count: int | None = None) -> list[ClosedTrade]:
        entries: Any = await self.redis.xrange(self.keys.strategy_trades(self.name), count=count)
        return [trade_from_fields(fields) for _id, fields in entries]

    async def equity_curve(self) -> list[tuple[int, Decimal]]:
        entries: Any = await self.redis.xrange(self.keys.equity(self.name))
        return [(int(f["ts"]), Decimal(f["equity"])) for _id, f in entries]

    async def write_reconciliation(self, result: dict[str, Any]) -> None:
        """Store the latest reconciliation (``ReconciliationResult.to_dict()``)."""
        await self.redis.set(
            self.keys.reconciliation(self.name), ReconciliationRecord.encode(result)
        )

    async def read_baseline(self) -> ReconciliationBaseline:
        """The stored reconciliation baseline (empty holdings: none stored)."""
        raw: Any = await self.redis.hgetall(self.keys.reconciliation_baseline(self.name))  # type: ignore[misc]
        return ReconciliationBaseline.from_hash(raw)

    async def write_baseline(self, baseline: ReconciliationBaseline) -> None:
        """Store the reconciliation baseline (nothing is written for empty holdings)."""
        if baseline.holdings:
            fields: Any = baseline.to_hash()
            await self.redis.hset(  # type: ignore[misc]
                self.keys.reconciliation_baseline(self.name), mapping=fields
            )

    async def heartbeat(self, ts_ms: int) -> None:
        """``heartbeat_ms`` in the summary hash: the runner's loop is alive (epoch ms)."""
        await self.redis.hset(self.keys.summary(self.name), "heartbeat_ms", str(ts_ms))  # type: ignore[misc]

    async def ack_emergency(
        self, action: str, ts_ms: int, cancelled: list[str], *, generation: int | None = None,
        since_ms: int | None = None, pod: str | None = None,
    ) -> None:
        """Record that this runner (``pod``) applied ``action`` at ``ts_ms`` (epoch ms):
        the change of the Emergency ``generation`` / of the Redis stop ``since_ms``."""
        ack = EmergencyAck(action, ts_ms, tuple(cancelled), generation=generation,
                           since_ms=since_ms, pod=pod)
        await self.redis.hset(self.keys.emergency_acks, self.name, ack.to_json())  # type: ignore[misc]

    async def read_emergency_ack(self) -> str | None:
        """The emergency action this runner last acknowledged (None if never)."""
        raw: Any = await self.redis.hget(self.keys.emergency_acks, self.name)  # type: ignore[misc]
        ack = EmergencyAck.from_json(raw)
        return (ack.action or None) if ack is not None else None

    async def read_emergency(self) -> dict[str, str]:
        """The emergency hash as stored (empty: never set); see read_emergency_state."""
        data: Any = await self.redis.hgetall(self.keys.emergency)  # type: ignore[misc]
        return dict(data)

    async def read_emergency_state(self) -> EmergencyState:
        """The emergency state in force (``none`` since 0 when never set)."""
        return EmergencyState.from_hash(await self.read_emergency())

    async def reset(self) -> None:
        """Forget this strategy's state (used by tests and an explicit `--reset-state`)."""
        k, name = self.keys, self.name
        await self.redis.delete(
            k.engine(name),
            k.orders(name),
            k.positions(name),
            k.fills_seen(name),
            k.strategy_trades(name),
            k.equity(name),
            k.summary(name),
            k.reconciliation(name),
            self.paper_key,
            self.cursor_key,
        )
