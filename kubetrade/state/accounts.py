"""One exchange account's books in Redis, shared by every live runner that trades on it
(issue 15 item 1). The account is the Strategy's ``spec.exchange.credentialsSecret``
(namespace-qualified in a cluster): strategies with the same Secret share it.

What is kept (``Keys.account(account, part)``):

==============  ======  ===========================================================
part            type    holds
==============  ======  ===========================================================
members         hash    strategy -> JSON {prefix, symbols, joined_ms}: who trades here
baseline        hash    asset -> quantity the account held that no strategy owns, taken
                        once when an asset is first reconciled (``_ms`` field: when)
foreign         hash    exchange trade id -> JSON {asset, qty, client_order_id, ...}: a
                        fill no member made (by hand, another installation), signed
ok_ms           string  when the account's books last added up (ms)
breaker         hash    state (open|closed), by, since_ms: the account's circuit
alerted         hash    asset -> the unattributed difference last alerted
==============  ======  ===========================================================

A member's holdings are read from its own state, written by its runner in one MULTI
with every fill (``StateStore.commit``): the positions hash and the engine snapshot's
dust. ``version`` of a member is the size of its applied-fills set: it grows with every
fill booked, so a reader can tell that the books moved while it compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import Keys

ZERO = Decimal(0)
#: Field of the baseline hash holding when it was first taken (ms).
BASELINE_MS = "_ms"


@dataclass(frozen=True)
class Member:
    """A strategy trading on the account: its client order id prefix and symbols."""

    name: str
    prefix: str
    symbols: tuple[str, ...]


@dataclass
class BooksSnapshot:
    """The account's books as read at one moment.

    ``holdings``: strategy -> asset -> quantity (positions + dust); ``versions``:
    strategy -> fills booked so far; ``foreign``: asset -> net quantity of fills no
    member made; ``baseline``: asset -> quantity owned by no strategy.
    """

    members: dict[str, Member] = field(default_factory=dict)
    holdings: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, Decimal] = field(default_factory=dict)
    baseline_ms: int = 0
    foreign: dict[str, Decimal] = field(default_factory=dict)
    foreign_ids: set[str] = field(default_factory=set)
    ok_ms: int = 0


def base_of(symbol: str) -> str:
    """``BTC`` of ``BTC/USDT``."""
    return symbol.split("/")[0]


def _holdings(positions: dict[str, str], engine: str | None) -> dict[str, Decimal]:
    """asset -> positions + dust, from a member's positions hash and engine snapshot."""
    out: dict[str, Decimal] = {}
    for symbol, raw in positions.items():
        qty = Decimal(str(json.loads(raw).get("quantity", "0")))
        out[base_of(symbol)] = out.get(base_of(symbol), ZERO) + qty
    if engine:
        dust = (json.loads(engine).get("portfolio") or {}).get("dust") or {}
        for symbol, qty in dust.items():
            out[base_of(symbol)] = out.get(base_of(symbol), ZERO) + Decimal(str(qty))
    return out


class AccountBooks:
    """Reads and writes of one account's books (see the module doc). Redis errors pass
    through (``RedisError``)."""

    def __init__(self, redis: Redis, keys: Keys, account: str) -> None:
        self.redis = redis
        self.keys = keys
        self.account = account

    def key(self, part: str) -> str:
        """The Redis key of one part of this account's books."""
        return self.keys.account(self.account, part)

    async def join(self, member: Member, now_ms: int) -> None:
        """Register (or refresh) ``member`` on the account."""
        value = {"prefix": member.prefix, "symbols": list(member.symbols), "joined_ms": now_ms}
        await self.redis.hset(self.key("members"), member.name, json.dumps(value))  # type: ignore[misc]

    async def members(self) -> dict[str, Member]:
        """Every strategy registered on the account."""
        raw: Any = await self.redis.hgetall(self.key("members"))  # type: ignore[misc]
        out: dict[str, Member] = {}
        for name, text in raw.items():
            data = json.loads(text)
            out[name] = Member(name, str(data["prefix"]), tuple(data.get("symbols") or ()))
        return out

    async def snapshot(self) -> BooksSnapshot:
        """Members, their holdings and versions, baseline, foreign fills, ok time."""
        members = await self.members()
        names = sorted(members)
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            for name in names:
                pipe.hgetall(k.positions(name))
                pipe.get(k.engine(name))
                pipe.scard(k.fills_seen(name))
            pipe.hgetall(self.key("baseline"))
            pipe.hgetall(self.key("foreign"))
            pipe.get(self.key("ok_ms"))
            rows: list[Any] = await pipe.execute()
        snap = BooksSnapshot(members=members)
        for i, name in enumerate(names):
            positions, engine, version = rows[3 * i: 3 * i + 3]
            snap.holdings[name] = _holdings(positions, engine)
            snap.versions[name] = int(version)
        baseline, foreign, ok_ms = rows[3 * len(names):]
        snap.baseline_ms = int(baseline.pop(BASELINE_MS, 0))
        snap.baseline = {a: Decimal(v) for a, v in baseline.items()}
        snap.foreign_ids = set(foreign)
        for text in foreign.values():
            row = json.loads(text)
            snap.foreign[row["asset"]] = snap.foreign.get(row["asset"], ZERO) + Decimal(row["qty"])
        snap.ok_ms = int(ok_ms or 0)
        return snap

    async def versions(self, names: list[str]) -> dict[str, int]:
        """strategy -> fills booked so far (the books moved when it grew)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.scard(self.keys.fills_seen(name))
            counts: list[int] = await pipe.execute()
        return dict(zip(names, (int(c) for c in counts), strict=True))

    async def take_baseline(self, values: dict[str, Decimal], now_ms: int) -> bool:
        """Record the baseline of assets not yet in it (first writer wins, per asset);
        True when anything was written."""
        wrote = False
        for asset, qty in values.items():
            if await self.redis.hsetnx(self.key("baseline"), asset, str(qty)):  # type: ignore[misc]
                wrote = True
        await self.redis.hsetnx(self.key("baseline"), BASELINE_MS, str(now_ms))  # type: ignore[misc]
        return wrote

    async def forget_baseline(self, assets: list[str]) -> None:
        """Drop the baseline of ``assets``: the next reconciliation takes it again from
        the account (a person accepting what the account now holds)."""
        if assets:
            await self.redis.hdel(self.key("baseline"), *assets)  # type: ignore[misc]

    async def booked(self, member: str, trade_ids: list[str]) -> set[str]:
        """The subset of ``trade_ids`` that ``member`` has booked."""
        if not trade_ids:
            return set()
        flags = await self.redis.smismember(self.keys.fills_seen(member), trade_ids)  # type: ignore[misc]
        return {t for t, seen in zip(trade_ids, flags, strict=True) if seen}

    async def add_foreign(self, trade_id: str, row: dict[str, str]) -> bool:
        """Record a fill no member made (``row``: asset, signed qty, client_order_id,
        symbol, side, ts_ms); True the first time (idempotent by trade id)."""
        added: int = await self.redis.hsetnx(  # type: ignore[misc]
            self.key("foreign"), trade_id, json.dumps(row))
        return bool(added)

    async def mark_ok(self, ts_ms: int) -> None:
        """The books added up with the balances read at ``ts_ms``."""
        await self.redis.set(self.key("ok_ms"), str(ts_ms))

    async def first_alert(self, differences: dict[str, str]) -> bool:
        """True when any asset's unattributed difference (asset -> text) is not the one
        last alerted for it (every runner on the asset sees the same one)."""
        key = self.key("alerted")
        async with self.redis.pipeline(transaction=True) as pipe:
            for asset in differences:
                pipe.hget(key, asset)
            mapping: Any = differences
            pipe.hset(key, mapping=mapping)
            rows: list[Any] = await pipe.execute()
        return any(old != differences[a] for a, old in zip(differences, rows, strict=False))

    async def clear_alert(self, assets: list[str]) -> None:
        """``assets`` add up again: their next difference is alerted."""
        if assets:
            await self.redis.hdel(self.key("alerted"), *assets)  # type: ignore[misc]

    # -- the account's circuit breaker --------------------------------------------
    async def set_breaker(self, state: str, by: str, now_ms: int) -> None:
        """Record the account's circuit ``state`` (open|closed), changed by ``by``."""
        fields: Any = {"state": state, "by": by, "since_ms": str(now_ms)}
        await self.redis.hset(self.key("breaker"), mapping=fields)  # type: ignore[misc]

    async def breaker(self) -> dict[str, str]:
        """{state, by, since_ms} of the account's circuit ({} when never tripped)."""
        raw: Any = await self.redis.hgetall(self.key("breaker"))  # type: ignore[misc]
        return dict(raw)
