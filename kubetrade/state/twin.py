"""The paper twin of a live strategy in Redis: its books apart from the live ones.

=====================================  =======  ==============================================
key (``Keys.strategy(s, part)``)       type     holds
=====================================  =======  ==============================================
``{p}:strategy:{s}:twin``              string   JSON ``TwinRecord``: the twin's engine snapshot,
                                                the comparison ledger, the size ramp, the
                                                latest comparison and size step
``{p}:strategy:{s}:twin:broker``       string   JSON snapshot of the twin's paper broker, written
                                                only when it changed (an order or a fill)
``{p}:strategy:{s}:twin:equity``       stream   fields ts, equity: the twin's equity curve
=====================================  =======  ==============================================

The live runner writes them after each candle, in one MULTI with the summary fields
``twin_divergence_pct`` and ``size_pct`` (the operator folds those into the Strategy
status). Nothing here touches the live keys: the twin never trades the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from redis.asyncio import Redis

from kubetrade.state.keys import Keys
from kubetrade.state.reader import EquityPoint, StateReader, TailCache
from kubetrade.state.schema import dumps, loads_dict

TWIN_PART = "twin"
TWIN_EQUITY_PART = "twin:equity"
TWIN_BROKER_PART = "twin:broker"
TWIN_EQUITY_MAXLEN = 200_000
RECORD_VERSION = 1


@dataclass
class TwinRecord:
    """What a restarting runner needs to continue the twin, and what readers show.

    ``engine``/``broker``: ``TradingEngine.snapshot()`` / ``PaperBroker.snapshot()``
    (the broker is stored under its own key, see ``TwinStore.save``);
    ``ledger``: ``TwinLedger.snapshot()``; ``ramp``: ``RampState.to_dict()`` (None: no
    ramp); ``comparison``: ``Comparison.to_dict()`` of the latest candle; ``size_pct``:
    the size step in force (percent); ``started_ms``/``updated_ms``: epoch ms.
    """

    engine: dict[str, Any]
    broker: dict[str, Any]
    ledger: dict[str, Any] = field(default_factory=dict)
    ramp: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None
    size_pct: int = 100
    started_ms: int = 0
    updated_ms: int = 0
    #: the latest ramp change (``RampChange.to_dict()``), for status and the dashboard
    ramp_change: dict[str, Any] | None = None

    def to_json(self) -> str:
        return dumps({"version": RECORD_VERSION, "engine": self.engine,
                      "ledger": self.ledger, "ramp": self.ramp, "comparison": self.comparison,
                      "size_pct": self.size_pct, "started_ms": self.started_ms,
                      "updated_ms": self.updated_ms, "ramp_change": self.ramp_change})

    @classmethod
    def from_json(cls, raw: str | None, broker: str | None = None) -> TwinRecord | None:
        """None when absent, not a JSON object, or of another version; ``broker``: the
        stored broker snapshot (JSON)."""
        data = loads_dict(raw)
        if data is None or data.get("version") != RECORD_VERSION:
            return None
        return cls(engine=data.get("engine") or {}, broker=loads_dict(broker) or {},
                   ledger=data.get("ledger") or {}, ramp=data.get("ramp"),
                   comparison=data.get("comparison"), size_pct=int(data.get("size_pct", 100)),
                   started_ms=int(data.get("started_ms", 0)),
                   updated_ms=int(data.get("updated_ms", 0)),
                   ramp_change=data.get("ramp_change"))

    def public(self) -> dict[str, Any]:
        """What readers show (no snapshots): comparison, size step, ramp, times."""
        return {"comparison": self.comparison, "size_pct": self.size_pct, "ramp": self.ramp,
                "ramp_change": self.ramp_change, "started_ms": self.started_ms,
                "updated_ms": self.updated_ms}


def summary_fields(divergence_pct: Decimal | None, size_pct: int,
                   twin_pnl: Decimal | None = None) -> dict[str, str]:
    """The summary hash fields the twin adds (``twin_divergence_pct``, ``size_pct``,
    ``twin_pnl``: the paper twin's P&L in the quote asset)."""
    out = {"size_pct": str(size_pct)}
    if divergence_pct is not None:
        out["twin_divergence_pct"] = str(divergence_pct)
    if twin_pnl is not None:
        out["twin_pnl"] = str(twin_pnl)
    return out


class TwinStore:
    """The twin's keys of one strategy (single writer: its live runner)."""

    def __init__(self, redis: Redis, keys: Keys, name: str) -> None:
        self.redis, self.keys, self.name = redis, keys, name

    @property
    def record_key(self) -> str:
        return self.keys.strategy(self.name, TWIN_PART)

    @property
    def equity_key(self) -> str:
        return self.keys.strategy(self.name, TWIN_EQUITY_PART)

    @property
    def broker_key(self) -> str:
        return self.keys.strategy(self.name, TWIN_BROKER_PART)

    async def load(self) -> TwinRecord | None:
        """The stored record (None: the twin starts from the live state)."""
        raw: Any = await self.redis.mget(self.record_key, self.broker_key)
        return TwinRecord.from_json(raw[0], raw[1])

    async def save(self, record: TwinRecord, equity: tuple[int, Decimal] | None,
                   summary: Mapping[str, str], *, broker_changed: bool = True) -> None:
        """The record (with ``record.broker`` when ``broker_changed``), a twin equity
        point (close ms, equity) and the summary fields, in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.record_key, record.to_json())
            if broker_changed:
                pipe.set(self.broker_key, dumps(record.broker))
            if equity is not None:
                pipe.xadd(self.equity_key, {"ts": str(equity[0]), "equity": str(equity[1])},
                          maxlen=TWIN_EQUITY_MAXLEN, approximate=True)
            if summary:
                pipe.hset(self.keys.summary(self.name), mapping=dict(summary))  # type: ignore[arg-type]
            await pipe.execute()

    async def save_summary(self, summary: Mapping[str, str]) -> None:
        """Only the summary fields (the twin has stopped; the size step still shows)."""
        await self.redis.hset(self.keys.summary(self.name), mapping=dict(summary))  # type: ignore[arg-type,misc]

    async def reset(self) -> None:
        """Forget the twin (tests; a twin restarted from the live state)."""
        await self.redis.delete(self.record_key, self.equity_key, self.broker_key)


async def read_twin(redis: Redis, keys: Keys, name: str) -> dict[str, Any] | None:
    """``TwinRecord.public()`` of strategy ``name``; None without a twin."""
    record = await TwinStore(redis, keys, name).load()
    return None if record is None else record.public()


def _point(fields: dict[str, str]) -> EquityPoint | None:
    """One entry of the twin's equity stream (None when it does not parse)."""
    try:
        return EquityPoint(int(fields["ts"]), Decimal(fields["equity"]))
    except (KeyError, ValueError, ArithmeticError):
        return None


_TWIN_TAILS: WeakKeyDictionary[StateReader, dict[str, TailCache[EquityPoint]]] = (
    WeakKeyDictionary())


async def cached_twin_equity(reader: StateReader, name: str,
                             max_points: int = TWIN_EQUITY_MAXLEN) -> list[EquityPoint]:
    """The twin's whole equity curve, oldest first, read incrementally like the live
    one (``StateReader.cached_equity``): a dashboard refreshed on every candle reads
    only the points added since (shared list: do not modify)."""
    tails = _TWIN_TAILS.setdefault(reader, {})
    tail = tails.get(name)
    if tail is None:
        key = reader.keys.strategy(name, TWIN_EQUITY_PART)
        tail = tails[name] = TailCache(reader.redis, key, _point, max_points)
    return await tail.refresh()


async def read_twin_equity(redis: Redis, keys: Keys, name: str,
                           count: int = 2000) -> list[tuple[int, str]]:
    """The newest ``count`` points of the twin's equity curve, oldest first: (ts ms,
    equity as a decimal string)."""
    entries: Any = await redis.xrevrange(keys.strategy(name, TWIN_EQUITY_PART), count=count)
    out = []
    for _id, f in reversed(entries):
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                  else v) for k, v in f.items()}
        out.append((int(fields["ts"]), str(fields["equity"])))
    return out


__all__ = ["TwinRecord", "TwinStore", "cached_twin_equity", "read_twin", "read_twin_equity",
           "summary_fields"]
