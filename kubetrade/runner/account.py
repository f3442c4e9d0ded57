"""The account-level half of a live runner's reconciliation (issue 15 item 1).

Every live strategy on one exchange account (``RunnerSpec.account``: its credentials
Secret) joins the account's books in Redis (``kubetrade.state.accounts``). Reconciling,
a runner checks the assets it trades against the whole account, not against its own
position alone: baseline + foreign fills + every member's books (+ fills a member has
not booked yet), pure in :mod:`kubetrade.runner.attribution`.

When that does not add up, the exchange's fills since the books last added up are
fetched and attributed by client order id: a member's own (booked or not yet), or
foreign (nobody's: a trade made by hand on the exchange). A foreign fill is recorded
once on the account (so it stays explained) and flagged in this reconciliation. What
is still unexplained is an *unattributed* difference of the account: one alert per
difference, and the reason a resume after a breaker trip waits for a person.

The books of other runners move while one compares (a fill booked between the reads):
each member's count of booked fills is read before and after; when it moved, the
comparison is done again (``ATTEMPTS`` times, then reported ``pending``, not a mismatch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.allocation import AllocationInputs, budget_of
from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Balance, Fill, MarketInfo
from kubetrade.exchange.base import ExchangeClient
from kubetrade.runner.attribution import (
    AccountDiff,
    baseline_to_take,
    differences,
    expected_holdings,
    owner_of,
    signed_base,
)
from kubetrade.state.accounts import AccountBooks, BooksSnapshot, Member, base_of

#: Comparisons tried while other members' books keep moving.
ATTEMPTS = 3
#: Binance answers a trade look-up's start time with the 24 hours after it.
FILLS_WINDOW_MS = 23 * 3_600_000

ZERO = Decimal(0)


@dataclass
class AccountResult:
    """The account-level verdict: ``status`` ok | pending | mismatch; ``differences``
    unattributed; ``foreign_trades`` fills of nobody's orders flagged now (first seen)."""

    account: str
    status: str = "ok"
    differences: list[AccountDiff] = field(default_factory=list)
    foreign_trades: list[dict[str, str]] = field(default_factory=list)
    unbooked: dict[str, Decimal] = field(default_factory=dict)
    baseline_taken: dict[str, Decimal] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "status": self.status,
            "differences": [d.to_dict() for d in self.differences],
            "foreign_trades": list(self.foreign_trades),
            "unbooked": {a: str(q) for a, q in self.unbooked.items()},
            "baseline_taken": {a: str(q) for a, q in self.baseline_taken.items()},
        }


@dataclass
class _Attributed:
    """Fills since the books last added up, attributed."""

    foreign: dict[str, Decimal] = field(default_factory=dict)  # new foreign, per asset
    unbooked: dict[str, Decimal] = field(default_factory=dict)
    flagged: list[dict[str, str]] = field(default_factory=list)


@dataclass(eq=False)
class AccountCheck:
    """One runner's view of its account (see the module doc). ``member``: this
    strategy; ``markets``: its markets (the assets it checks, their tolerance)."""

    books: AccountBooks
    member: Member
    _: KW_ONLY
    exchange: ExchangeClient
    markets: Mapping[str, MarketInfo]
    clock: Clock
    assets: list[str] = field(init=False)

    def __post_init__(self) -> None:
        symbols = self.member.symbols
        self.assets = sorted({m.base for s, m in self.markets.items() if s in symbols})

    async def join(self) -> None:
        """Register this strategy on the account (every start)."""
        await self.books.join(self.member, self.clock.now_ms())

    async def check(
        self, read_balances: Callable[[], Awaitable[dict[str, Balance]]]
    ) -> tuple[AccountResult, dict[str, Balance]]:
        """(account verdict, the balances read). Exchange and Redis errors pass through."""
        result = AccountResult(self.books.account, status="pending")
        balances: dict[str, Balance] = {}
        for _ in range(ATTEMPTS):
            snap = await self.books.snapshot()
            read_ms = self.clock.now_ms()
            balances = await read_balances()
            verdict = await self._compare(snap, balances, read_ms)
            # recorded on the account by this attempt: flagged now, never again
            result.foreign_trades += verdict.foreign_trades
            if await self.books.versions(sorted(snap.versions)) == snap.versions:
                if verdict.status == "ok":
                    await self.books.mark_ok(read_ms)
                verdict.foreign_trades = result.foreign_trades
                return verdict, balances
        return result, balances

    async def _compare(
        self, snap: BooksSnapshot, balances: dict[str, Balance], read_ms: int
    ) -> AccountResult:
        totals = {a: b.total for a, b in balances.items()}
        result = AccountResult(self.books.account)
        take = baseline_to_take(self.assets, snap.baseline, snap.foreign, snap.holdings, totals)
        if take and await self.books.take_baseline(take, read_ms):
            result.baseline_taken = take
        baseline = {**take, **snap.baseline}
        tolerance = {m.base: m.qty_step / 2 for m in self.markets.values()}
        expected = expected_holdings(self.assets, baseline, snap.foreign, snap.holdings, {})
        diffs = differences(expected, totals, tolerance)
        if not diffs:
            return result
        since = max(snap.ok_ms, snap.baseline_ms)
        found = await self._attribute(snap, [d.asset for d in diffs], since, read_ms)
        foreign = dict(snap.foreign)
        for asset, qty in found.foreign.items():
            foreign[asset] = foreign.get(asset, ZERO) + qty
        expected = expected_holdings(self.assets, baseline, foreign, snap.holdings,
                                     found.unbooked)
        result.differences = differences(expected, totals, tolerance)
        result.foreign_trades, result.unbooked = found.flagged, found.unbooked
        result.status = "mismatch" if result.differences else "ok"
        return result

    def _symbols_of(self, snap: BooksSnapshot, assets: list[str]) -> list[str]:
        """Every symbol a member trades whose base asset is one of ``assets``."""
        symbols = set(self.member.symbols)
        for member in snap.members.values():
            symbols |= set(member.symbols)
        return sorted(s for s in symbols if base_of(s) in assets)

    async def _attribute(
        self, snap: BooksSnapshot, assets: list[str], since_ms: int, read_ms: int
    ) -> _Attributed:
        """Fills of ``assets``' symbols from ``since_ms`` to the balance read, attributed
        by client order id (see the module doc)."""
        out = _Attributed()
        prefixes = {name: m.prefix for name, m in snap.members.items()}
        prefixes.setdefault(self.member.name, self.member.prefix)
        window = None if read_ms - since_ms > FILLS_WINDOW_MS else since_ms
        by_owner: dict[str, list[Fill]] = {}
        for symbol in self._symbols_of(snap, assets):
            for fill in await self.exchange.fetch_fills(symbol, window):
                if since_ms <= fill.ts_ms <= read_ms:
                    owner = owner_of(fill.client_order_id, prefixes) or ""
                    by_owner.setdefault(owner, []).append(fill)
        for owner, fills in sorted(by_owner.items()):
            if owner:
                booked = await self.books.booked(owner, [f.trade_id for f in fills])
                for f in fills:
                    if f.trade_id not in booked:
                        base = base_of(f.symbol)
                        out.unbooked[base] = out.unbooked.get(base, ZERO) + signed_base(f, base)
            else:
                await self._foreign(snap, fills, out)
        return out

    async def _foreign(self, snap: BooksSnapshot, fills: list[Fill], out: _Attributed) -> None:
        """Count each fill no member made that the books did not hold yet; record it on
        the account (once) and flag it when this runner recorded it."""
        for f in fills:
            if f.trade_id in snap.foreign_ids:
                continue
            base = base_of(f.symbol)
            out.foreign[base] = out.foreign.get(base, ZERO) + signed_base(f, base)
            row = {"asset": base, "qty": str(signed_base(f, base)), "trade_id": f.trade_id,
                   "client_order_id": f.client_order_id, "symbol": f.symbol,
                   "side": f.side.value, "quantity": str(f.quantity), "price": str(f.price),
                   "ts_ms": str(f.ts_ms)}
            if await self.books.add_foreign(f.trade_id, row):
                out.flagged.append(row)


def account_check(
    books: AccountBooks | None, name: str, prefix: str, symbols: list[str], *,
    exchange: ExchangeClient, markets: Mapping[str, MarketInfo], clock: Clock,
) -> AccountCheck | None:
    """The account check of a live runner (None without ``books``: paper)."""
    if books is None:
        return None
    member = Member(name, prefix, tuple(symbols))
    return AccountCheck(books, member, exchange=exchange, markets=markets, clock=clock)


async def starting_capital(
    mode: str, initial_capital: Decimal, pct: Decimal | None, quote: str,
    exchange: ExchangeClient,
) -> Decimal:
    """A fresh live strategy's budget: ``pct`` % of the account's ``quote`` balance (free
    + locked) when given, else ``initial_capital`` (paper: always). Exchange errors pass
    through (the runner does not start on a guess)."""
    if mode != "live" or pct is None:
        return initial_capital
    balances = await exchange.fetch_balances()
    return budget_of(AllocationInputs(quote, initial_capital, pct_of_account=pct), balances)
