"""Live against its paper twin: the figures of the runbook's "Initial Live Period".

A live strategy's runner runs a second engine in paper mode on the same closed candles
(kubetrade/runner/twin.py). Both engines make the same decisions at the same decision
time until their books part (a rejected order, a missed fill); this module compares
what each book did with those decisions. Pure: no I/O, no clock.

The unit of comparison is one *decision*: the orders both engines emit for one candle
carry the same decision time (``Order.created_ms``), symbol and side, so
``decision_key`` pairs them. Each book reports every order it made as an
``OrderOutcome`` once the order is terminal; :class:`TwinLedger` pairs outcomes by key
and folds each settled pair into running totals (bounded memory: a live runner runs
for months). :func:`compare` turns the totals and the two books' figures into a
:class:`Comparison`.

Figures (units):

- ``pnl``, ``equity``, ``fees``: quote asset (Decimal), from each engine's summary.
- ``trades``: closed round trips of each book.
- ``fills_matched``: decisions filled on both books; ``fills_missed``: filled by the
  twin, not live (rejected, cancelled, never sent because live had parted);
  ``fills_extra``: filled live, not by the twin.
- ``avg_slippage_bps``: mean over matched fills of the live average price against the
  twin's, in basis points, signed so that positive is worse for live (a buy dearer, a
  sell cheaper): ``10_000 * (live - twin) / twin`` for a buy, the negative for a sell.
- ``rejected``: orders the exchange (live) / the paper broker (twin) refused.
- ``avg_latency_ms``/``max_latency_ms``: decision to last fill of live's matched and
  extra fills (``updated_ms - decided_ms``); the twin fills at its decision.
- ``divergence_pct``: ``|live equity - twin equity|`` as percent of the twin's starting
  equity: the one number the RiskPolicy's ``twinDivergencePct`` threshold is held to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
_BPS_PLACES = Decimal("0.01")
_PCT_PLACES = Decimal("0.0001")

LIVE = "live"
TWIN = "twin"
#: order statuses that end an order (OrderStatus values)
TERMINAL = frozenset({"filled", "canceled", "rejected", "expired"})


def decision_key(symbol: str, side: str, decided_ms: int) -> str:
    """The key that pairs the live and the twin order of one decision."""
    return f"{symbol}|{side}|{decided_ms}"


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """One book's order for one decision, once terminal (or as far as it got).

    ``side`` is ``buy``/``sell``; ``status`` an OrderStatus value; ``filled`` the base
    quantity executed at ``avg_price`` (None when nothing filled); ``decided_ms`` the
    decision time, ``updated_ms`` when the exchange last changed it (epoch ms).
    """

    symbol: str
    side: str
    decided_ms: int
    status: str
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    updated_ms: int = 0

    @property
    def key(self) -> str:
        return decision_key(self.symbol, self.side, self.decided_ms)

    @property
    def is_filled(self) -> bool:
        return self.filled > 0 and self.avg_price is not None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "side": self.side, "decided_ms": self.decided_ms,
                "status": self.status, "filled": str(self.filled),
                "avg_price": None if self.avg_price is None else str(self.avg_price),
                "updated_ms": self.updated_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderOutcome:
        price = data.get("avg_price")
        return cls(str(data["symbol"]), str(data["side"]), int(data["decided_ms"]),
                   str(data["status"]), Decimal(str(data.get("filled", "0"))),
                   None if price in (None, "") else Decimal(str(price)),
                   int(data.get("updated_ms", 0)))


def slippage_bps(side: str, live_price: Decimal, twin_price: Decimal) -> Decimal:
    """Live's price against the twin's in bps, positive = worse for live. Raises
    ValueError for a twin price that is not positive."""
    if twin_price <= 0:
        raise ValueError(f"twin price must be > 0, got {twin_price}")
    diff = (live_price - twin_price) / twin_price * BPS
    return diff if side == "buy" else -diff


@dataclass
class TwinTotals:
    """What settled pairs added up to (see the module docstring for each figure)."""

    fills_matched: int = 0
    fills_missed: int = 0
    fills_extra: int = 0
    slippage_bps_sum: Decimal = ZERO
    latency_ms_sum: int = 0
    latency_count: int = 0
    latency_ms_max: int = 0
    rejected_live: int = 0
    rejected_twin: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["slippage_bps_sum"] = str(self.slippage_bps_sum)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinTotals:
        counts = {k: int(v) for k, v in data.items()
                  if k in cls.__dataclass_fields__ and k != "slippage_bps_sum"}
        return cls(slippage_bps_sum=Decimal(str(data.get("slippage_bps_sum", "0"))), **counts)


@dataclass
class TwinLedger:
    """Pairs the two books' outcomes by decision and keeps the running totals.

    ``record(book, outcome)`` as orders end; ``close_decisions(upto_ms)`` once both
    books have decided on every candle up to ``upto_ms`` (a key one side never made is
    then settled alone). A pair settles when each side it has is terminal.
    """

    totals: TwinTotals = field(default_factory=TwinTotals)
    pending: dict[str, dict[str, OrderOutcome]] = field(default_factory=dict)
    decided_upto_ms: int = -1

    def record(self, book: str, outcome: OrderOutcome) -> None:
        """One book's order (``book`` is ``live`` or ``twin``); a later record of the
        same decision replaces an earlier one. Raises ValueError for another book."""
        if book not in (LIVE, TWIN):
            raise ValueError(f"book must be {LIVE!r} or {TWIN!r}, got {book!r}")
        self.pending.setdefault(outcome.key, {})[book] = outcome
        self._settle(outcome.key)

    def close_decisions(self, upto_ms: int) -> None:
        """Both books have decided on every candle whose decision time <= ``upto_ms``."""
        self.decided_upto_ms = max(self.decided_upto_ms, upto_ms)
        for key in list(self.pending):
            self._settle(key)

    def _settle(self, key: str) -> None:
        sides = self.pending[key]
        if not all(o.is_terminal for o in sides.values()):
            return
        any_side = next(iter(sides.values()))
        if len(sides) < 2 and any_side.decided_ms > self.decided_upto_ms:
            return  # the other book may still decide on this candle
        del self.pending[key]
        self._fold(sides.get(LIVE), sides.get(TWIN))

    def _fold(self, live: OrderOutcome | None, twin: OrderOutcome | None) -> None:
        t = self.totals
        if live is not None and live.status == "rejected":
            t.rejected_live += 1
        if twin is not None and twin.status == "rejected":
            t.rejected_twin += 1
        live_filled = live is not None and live.is_filled
        twin_filled = twin is not None and twin.is_filled
        if live_filled and twin_filled:
            assert live is not None and twin is not None
            assert live.avg_price is not None and twin.avg_price is not None
            t.fills_matched += 1
            t.slippage_bps_sum += slippage_bps(live.side, live.avg_price, twin.avg_price)
        elif twin_filled:
            t.fills_missed += 1
        elif live_filled:
            t.fills_extra += 1
        if live_filled:
            assert live is not None
            latency = max(0, live.updated_ms - live.decided_ms)
            t.latency_ms_sum += latency
            t.latency_count += 1
            t.latency_ms_max = max(t.latency_ms_max, latency)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (totals, unsettled outcomes, decided_upto_ms)."""
        return {"totals": self.totals.to_dict(), "decided_upto_ms": self.decided_upto_ms,
                "pending": {k: {b: o.to_dict() for b, o in v.items()}
                            for k, v in self.pending.items()}}

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> TwinLedger:
        """The ledger of a ``snapshot``."""
        pending = {k: {b: OrderOutcome.from_dict(o) for b, o in v.items()}
                   for k, v in (data.get("pending") or {}).items()}
        return cls(TwinTotals.from_dict(data.get("totals") or {}), pending,
                   int(data.get("decided_upto_ms", -1)))


@dataclass(frozen=True, slots=True)
class BookFigures:
    """One book's money and counts (quote asset; from ``TradingEngine.summary``)."""

    equity: Decimal
    starting_equity: Decimal
    fees: Decimal
    trades: int

    @property
    def pnl(self) -> Decimal:
        return self.equity - self.starting_equity

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> BookFigures:
        """From an engine summary (``equity``, ``starting_cash``, ``fees``, ``trades``)."""
        return cls(Decimal(str(summary["equity"])), Decimal(str(summary["starting_cash"])),
                   Decimal(str(summary.get("fees", "0"))), int(summary.get("trades", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"equity": str(self.equity), "starting_equity": str(self.starting_equity),
                "pnl": str(self.pnl), "fees": str(self.fees), "trades": self.trades}


@dataclass(frozen=True, slots=True)
class Comparison:
    """Live against twin, as users read it (module docstring: figures and units)."""

    live: BookFigures
    twin: BookFigures
    totals: TwinTotals
    divergence_pct: Decimal
    threshold_pct: Decimal = ZERO

    @property
    def avg_slippage_bps(self) -> Decimal | None:
        n = self.totals.fills_matched
        return None if n == 0 else (self.totals.slippage_bps_sum / n).quantize(_BPS_PLACES)

    @property
    def avg_latency_ms(self) -> int | None:
        n = self.totals.latency_count
        return None if n == 0 else self.totals.latency_ms_sum // n

    @property
    def diverged(self) -> bool:
        """Past the threshold (never when the threshold is 0 = off)."""
        return self.threshold_pct > 0 and self.divergence_pct > self.threshold_pct

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/live-vs-paper`` (money and bps as strings)."""
        t = self.totals
        slip = self.avg_slippage_bps
        return {
            "live": self.live.to_dict(), "twin": self.twin.to_dict(),
            "pnl_gap": str(self.live.pnl - self.twin.pnl),
            "fills_matched": t.fills_matched, "fills_missed": t.fills_missed,
            "fills_extra": t.fills_extra,
            "avg_slippage_bps": None if slip is None else str(slip),
            "rejected": {LIVE: t.rejected_live, TWIN: t.rejected_twin},
            "avg_latency_ms": self.avg_latency_ms, "max_latency_ms": t.latency_ms_max,
            "divergence_pct": str(self.divergence_pct),
            "threshold_pct": str(self.threshold_pct), "diverged": self.diverged,
        }


def divergence_pct(live: BookFigures, twin: BookFigures) -> Decimal:
    """``|live equity - twin equity|`` as percent of the twin's starting equity (0 when
    that is not positive), to 4 places."""
    if twin.starting_equity <= 0:
        return ZERO
    gap = abs(live.equity - twin.equity) / twin.starting_equity * HUNDRED
    return gap.quantize(_PCT_PLACES)


def compare(live: BookFigures, twin: BookFigures, totals: TwinTotals,
            threshold_pct: Decimal = ZERO) -> Comparison:
    """The comparison of two books with their settled totals; ``threshold_pct`` is the
    RiskPolicy's ``twinDivergencePct`` (0 = no threshold)."""
    return Comparison(live, twin, totals, divergence_pct(live, twin), threshold_pct)


def outcomes_total(outcomes: Iterable[tuple[str, OrderOutcome]],
                   upto_ms: int | None = None) -> TwinTotals:
    """Totals of ``(book, outcome)`` pairs recorded in order into a fresh ledger, with
    every decision closed (``upto_ms`` None: all): the batch form, for reports and tests."""
    ledger = TwinLedger()
    last = -1
    for book, outcome in outcomes:
        ledger.record(book, outcome)
        last = max(last, outcome.decided_ms)
    ledger.close_decisions(last if upto_ms is None else upto_ms)
    return ledger.totals


__all__ = ["LIVE", "TWIN", "BookFigures", "Comparison", "OrderOutcome", "TwinLedger",
           "TwinTotals", "compare", "decision_key", "divergence_pct", "outcomes_total",
           "slippage_bps"]
