"""Everything the API and dashboard read from Redis, in one place.

The runners write (``kubetrade.state.store``); this module only reads, so the API can
never corrupt trading state. Keys come from :class:`Keys` only. Reads that touch
several keys go through one pipeline so a page costs one round trip.

Pagination of the streams (trades, audit) is by stream id: entries are returned
newest first and ``next_cursor`` is the id of the last entry returned, to be passed
back as ``cursor`` (exclusive). Filters that the stream id cannot express (symbol,
strategy, time of the trade) are applied while scanning, with a bounded scan per
request so one call never walks a million entries; when the bound is hit the page may
be shorter than ``limit`` but still carries a ``next_cursor`` to continue from.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from kubetrade.domain.models import ClosedTrade, Position, from_dict
from kubetrade.state.audit import AuditEntry
from kubetrade.state.keys import Keys
from kubetrade.state.schema import (
    EmergencyAck,
    EmergencyState,
    ReconciliationRecord,
    StrategySummary,
    _decimal,  # the one parser of stored decimals
)
from kubetrade.state.store import trade_from_fields

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
SCAN_BATCH = 500
MAX_SCAN = 20_000

_T = TypeVar("_T")


@dataclass(frozen=True)
class Page(Generic[_T]):
    items: list[_T]
    next_cursor: str | None


@dataclass(frozen=True)
class TradeRecord:
    id: str
    trade: ClosedTrade


@dataclass(frozen=True)
class EquityPoint:
    ts_ms: int
    equity: Decimal


def _loads(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _int(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


_U64 = 2**64 - 1


def valid_cursor(cursor: str) -> bool:
    """A stream id Redis accepts: ``ms-seq``, both unsigned 64-bit."""
    if not STREAM_ID.match(cursor):
        return False
    ms, seq = cursor.split("-")
    return int(ms) <= _U64 and int(seq) <= _U64


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class TailCache(Generic[_T]):
    """A parsed copy of an append-only stream that reads only what was added since the
    last refresh, so analytics over 100,000 trades does not re-read and re-parse them
    on every dashboard update. A stream that was deleted or restarted (its newest id
    is older than ours, its oldest is newer than ours, or it is empty) is read again
    from scratch."""

    CHUNK = 10_000

    def __init__(
        self,
        redis: Any,
        key: str,
        parse: Callable[[dict[str, str]], _T | None],
        max_items: int,
    ) -> None:
        self._redis = redis
        self.key = key
        self._parse = parse
        self._max = max_items
        self.items: list[_T] = []
        self.last_id: str | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> list[_T]:
        async with self._lock:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self.key)
                pipe.xrange(self.key, count=1)
                pipe.xrevrange(self.key, count=1)
                length, oldest, newest = await pipe.execute()
            if self.last_id is not None and (
                not length
                # our last entry is gone: the stream was deleted and written anew (or
                # trimmed past it): what we hold is no longer a prefix of it
                or _id_tuple(oldest[0][0]) > _id_tuple(self.last_id)
                or _id_tuple(newest[0][0]) < _id_tuple(self.last_id)
            ):
                self.items, self.last_id = [], None
            if length:
                lower = f"({self.last_id}" if self.last_id else "-"
                while True:
                    entries = await self._redis.xrange(
                        self.key, min=lower, max="+", count=self.CHUNK
                    )
                    for _id, fields in entries:
                        parsed = self._parse(fields)
                        if parsed is not None:
                            self.items.append(parsed)
                    if entries:
                        self.last_id = entries[-1][0]
                        lower = f"({self.last_id}"
                    if len(entries) < self.CHUNK:
                        break
                if len(self.items) > self._max:
                    del self.items[: len(self.items) - self._max]
            return self.items


def _parse_trade(fields: dict[str, str]) -> ClosedTrade | None:
    try:
        return trade_from_fields(fields)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None


def _positions(raw: dict[str, str]) -> list[Position]:
    """A positions hash (symbol -> JSON position) as positions, by symbol; an entry
    that does not parse is left out."""
    out: list[Position] = []
    for _symbol, value in sorted(raw.items()):
        data = _loads(value)
        if isinstance(data, dict):
            try:
                out.append(from_dict(Position, data))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                continue
    return out


def _in_window(ts_ms: int, since_ms: int | None, until_ms: int | None) -> bool:
    """``since_ms <= ts_ms <= until_ms``, a missing bound being open."""
    if since_ms is not None and ts_ms < since_ms:
        return False
    return not (until_ms is not None and ts_ms > until_ms)


def _parse_equity(fields: dict[str, str]) -> EquityPoint | None:
    ts, eq = _int(fields.get("ts")), _decimal(fields.get("equity"))
    return EquityPoint(ts, eq) if ts is not None and eq is not None else None


class StateReader:
    """Read-only view of the trading state of every strategy."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        # redis-py types replies as ``bytes | str | None`` for every mode; every client
        # of ours uses decode_responses=True, so the replies are str and typed as Any.
        self.redis: Any = redis
        self.keys = keys
        self._trade_tails: dict[str, TailCache[ClosedTrade]] = {}
        self._equity_tails: dict[str, TailCache[EquityPoint]] = {}

    async def cached_trades(self, strategy: str, max_count: int = 200_000) -> list[ClosedTrade]:
        """Every closed trade of a strategy, oldest first, read incrementally (the list is
        shared: callers must not modify it)."""
        tail = self._trade_tails.get(strategy)
        if tail is None:
            key = self.keys.strategy_trades(strategy)
            tail = self._trade_tails[strategy] = TailCache(self.redis, key, _parse_trade, max_count)
        return await tail.refresh()

    async def cached_equity(self, strategy: str, max_points: int = 200_000) -> list[EquityPoint]:
        """The strategy's whole equity curve, oldest first, read incrementally (shared
        list: do not modify)."""
        tail = self._equity_tails.get(strategy)
        if tail is None:
            key = self.keys.equity(strategy)
            tail = self._equity_tails[strategy] = TailCache(
                self.redis, key, _parse_equity, max_points
            )
        return await tail.refresh()

    def stream_marks(self, strategy: str) -> tuple[str | None, str | None]:
        """Last ids seen by the caches: equal marks mean equal analytics inputs."""
        t, e = self._trade_tails.get(strategy), self._equity_tails.get(strategy)
        return (t.last_id if t else None, e.last_id if e else None)

    # -- streams ------------------------------------------------------------------
    async def _scan_desc(
        self,
        key: str,
        limit: int,
        cursor: str | None,
        parse: Callable[[str, dict[str, str]], _T | None],
        accept: Callable[[_T], bool],
        filtered: bool,
    ) -> Page[_T]:
        """Newest-first scan of a stream, filtered, bounded by ``MAX_SCAN`` entries.

        Unfiltered pages read exactly ``limit + 1`` entries (the extra one says whether
        there is a next page); filtered scans start at a few pages' worth and double,
        so a selective filter does not cost a round trip per page."""
        if cursor is not None:
            if not valid_cursor(cursor):
                raise ValueError(f"cursor: {cursor!r} is not a stream id (ms-seq)")
            if cursor.strip("0-") == "":
                return Page([], None)  # nothing is older than the first possible id
        items: list[_T] = []
        upper = f"({cursor}" if cursor else "+"
        scanned = 0
        last_id: str | None = None
        batch = min(SCAN_BATCH, max(64, limit * 4)) if filtered else limit + 1
        while scanned < MAX_SCAN:
            count = min(batch, MAX_SCAN - scanned)
            entries = await self.redis.xrevrange(key, max=upper, min="-", count=count)
            for idx, (entry_id, fields) in enumerate(entries):
                scanned += 1
                last_id = entry_id
                parsed = parse(entry_id, fields)
                if parsed is None or not accept(parsed):
                    continue
                items.append(parsed)
                if len(items) == limit:
                    if idx < len(entries) - 1:
                        return Page(items, entry_id)
                    if len(entries) < count:
                        return Page(items, None)
                    more = await self.redis.xrevrange(key, max=f"({entry_id}", min="-", count=1)
                    return Page(items, entry_id if more else None)
            if len(entries) < count or last_id is None:
                return Page(items, None)
            upper = f"({last_id}"
            batch = min(SCAN_BATCH, batch * 2)
        # Scan bound reached: hand back where to continue (if anything is left).
        assert last_id is not None
        more = await self.redis.xrevrange(key, max=f"({last_id}", min="-", count=1)
        return Page(items, last_id if more else None)

    async def trades(
        self,
        limit: int = 50,
        cursor: str | None = None,
        strategy: str | None = None,
        symbol: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> Page[TradeRecord]:
        """Closed trades, newest first; the time filters apply to the trade's exit time."""
        key = self.keys.strategy_trades(strategy) if strategy else self.keys.trades

        def parse(entry_id: str, fields: dict[str, str]) -> TradeRecord | None:
            # cheap checks on the raw fields first: most of a filtered scan is skipped
            # without building Decimals
            if symbol and fields.get("symbol") != symbol:
                return None
            if strategy and fields.get("strategy") != strategy:
                return None
            try:
                return TradeRecord(entry_id, trade_from_fields(fields))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                return None

        def accept(rec: TradeRecord) -> bool:
            t = rec.trade
            if strategy and t.strategy != strategy:
                return False
            if symbol and t.symbol != symbol:
                return False
            return _in_window(t.exit_ms, since_ms, until_ms)

        filtered = bool(symbol) or since_ms is not None or until_ms is not None
        return await self._scan_desc(key, limit, cursor, parse, accept, filtered)

    async def audit(
        self,
        limit: int = 50,
        cursor: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        strategy: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> Page[AuditEntry]:
        """Audit entries, newest first. ``action`` matches exactly or as a dotted prefix
        (``emergency`` matches ``emergency.stop``)."""

        def parse(entry_id: str, fields: dict[str, str]) -> AuditEntry | None:
            try:
                return AuditEntry.from_stream(entry_id, fields)
            except (KeyError, TypeError, ValueError):
                return None

        def accept(e: AuditEntry) -> bool:
            if actor and e.actor != actor:
                return False
            if action and e.action != action and not e.action.startswith(action + "."):
                return False
            if strategy and e.strategy != strategy:
                return False
            return _in_window(e.ts_ms, since_ms, until_ms)

        filtered = any(v is not None for v in (actor, action, strategy, since_ms, until_ms))
        return await self._scan_desc(self.keys.audit, limit, cursor, parse, accept, filtered)

    # -- per-strategy state ---------------------------------------------------------
    async def strategy_names(self) -> list[str]:
        names: set[str] = await self.redis.smembers(self.keys.strategies)
        return sorted(names)

    async def summaries(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        names = list(names)
        if not names:
            return {}
        results = await self._hgetall_each([self.keys.summary(n) for n in names])
        return {n: dict(r) for n, r in zip(names, results, strict=True)}

    async def _hgetall_each(self, keys: list[str]) -> list[dict[str, str]]:
        """``HGETALL`` of each key, in order, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            results: list[dict[str, str]] = await pipe.execute()
        return results

    async def positions(self, names: Iterable[str]) -> dict[str, list[Position]]:
        names = list(names)
        if not names:
            return {}
        results = await self._hgetall_each([self.keys.positions(n) for n in names])
        return {n: _positions(raw) for n, raw in zip(names, results, strict=True)}

    async def overview(self) -> tuple[dict[str, dict[str, str]], dict[str, list[Position]]]:
        """Summaries and positions of every strategy in one round trip after the name
        lookup (the portfolio endpoint's hot path)."""
        names = await self.strategy_names()
        if not names:
            return {}, {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in names:
                pipe.hgetall(self.keys.summary(n))
                pipe.hgetall(self.keys.positions(n))
            results = await pipe.execute()
        summaries: dict[str, dict[str, str]] = {}
        positions: dict[str, list[Position]] = {}
        for i, n in enumerate(names):
            summaries[n] = dict(results[2 * i])
            positions[n] = _positions(results[2 * i + 1])
        return summaries, positions

    async def summary_records(self, names: Iterable[str]) -> dict[str, StrategySummary]:
        """``summaries`` as typed records."""
        raw = await self.summaries(names)
        return {n: StrategySummary.from_hash(h) for n, h in raw.items()}

    async def reconciliation_records(
        self, names: Iterable[str]
    ) -> dict[str, ReconciliationRecord | None]:
        """The latest reconciliation of each strategy (None: none yet, or unreadable)."""
        names = list(names)
        if not names:
            return {}
        values = await self.redis.mget([self.keys.reconciliation(n) for n in names])
        return {
            n: ReconciliationRecord.from_json(v) for n, v in zip(names, values, strict=True)
        }

    async def reconciliation(self, names: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """The latest reconciliation of each strategy as stored (JSON object or None)."""
        records = await self.reconciliation_records(names)
        return {n: (r.as_dict() if r is not None else None) for n, r in records.items()}

    # -- global ---------------------------------------------------------------------
    async def emergency(self) -> dict[str, str]:
        """The emergency hash as stored (empty: never set)."""
        data: dict[str, str] = await self.redis.hgetall(self.keys.emergency)
        return data

    async def emergency_state(self) -> EmergencyState:
        """The emergency state in force (``none`` since 0 when never set)."""
        return EmergencyState.from_hash(await self.emergency())

    async def emergency_ack_records(self) -> dict[str, EmergencyAck]:
        """Each runner's last emergency acknowledgement, by runner name (sorted)."""
        raw: dict[str, str] = await self.redis.hgetall(self.keys.emergency_acks)
        out: dict[str, EmergencyAck] = {}
        for runner, value in sorted(raw.items()):
            ack = EmergencyAck.from_json(value)
            if ack is not None:
                out[runner] = ack
        return out

    async def emergency_acks(self) -> dict[str, dict[str, Any]]:
        """``emergency_ack_records`` as the stored JSON objects."""
        return {r: a.as_dict() for r, a in (await self.emergency_ack_records()).items()}

    async def _json_object(self, key: str) -> dict[str, Any] | None:
        """The JSON object stored at ``key`` (None: missing, unreadable or not an object)."""
        data = _loads(await self.redis.get(key))
        return data if isinstance(data, dict) else None

    async def preflight(self) -> dict[str, Any] | None:
        return await self._json_object(self.keys.preflight)

    async def validation_latest(self) -> dict[str, Any] | None:
        return await self._json_object(self.keys.validation_latest)


def thin(points: list[EquityPoint], max_points: int | None) -> list[EquityPoint]:
    """Every k-th point plus the last, so a long curve stays cheap to send and draw."""
    if max_points is None or max_points <= 0 or len(points) <= max_points:
        return points
    step = -(-len(points) // max_points)
    out = points[::step]
    if out[-1] is not points[-1]:
        out = [*out[: max_points - 1], points[-1]]
    return out


def summary_decimal(summary: dict[str, str], field: str) -> Decimal | None:
    return _decimal(summary.get(field))


def summary_int(summary: dict[str, str], field: str) -> int | None:
    return _int(summary.get(field))
