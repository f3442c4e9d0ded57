"""A ``TradingEngine`` as JSON-able data and back: what a runner saves after each step
and reads after SIGKILL (``TradingEngine.snapshot`` / ``TradingEngine.restore``).

The format is versioned (``SNAPSHOT_VERSION``); money is written as decimal strings,
times as epoch milliseconds. Each part of the engine writes and reads its own section
(portfolio, controls, tracker, algorithm, ledger, halts and equity); this module puts
the sections together and takes them apart.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.models import to_dict
from kubetrade.domain.portfolio import Portfolio
from kubetrade.domain.risk import stop_price_for

if TYPE_CHECKING:  # the engine imports this module: a cycle at run time
    from kubetrade.domain.engine import TradingEngine

SNAPSHOT_VERSION = 1


def check_version(snapshot: dict[str, Any]) -> None:
    """Raises ``ValueError`` when ``snapshot`` is not of ``SNAPSHOT_VERSION``."""
    if snapshot.get("version") != SNAPSHOT_VERSION:
        raise ValueError(
            f"snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}"
        )


def snapshot_of(engine: TradingEngine) -> dict[str, Any]:
    """Everything needed to continue ``engine`` after SIGKILL, as JSON-able data."""
    ledger, guard, fills = engine._ledger, engine._guard, engine._fills
    return {
        "version": SNAPSHOT_VERSION,
        "name": engine.name,
        "quote_asset": engine.quote_asset,
        "fee_rate": str(engine.fee_rate),
        "timeframe_ms": engine.timeframe_ms,
        "limits": engine.limits.model_dump(mode="json"),
        "markets": {s: to_dict(m) for s, m in engine.markets.items()},
        "portfolio": engine.portfolio.snapshot(),
        "controls": engine.controls.snapshot(),
        "tracker": engine.tracker.snapshot(),
        "strategy": engine.strategy.snapshot(),
        **ledger.snapshot_orders(),
        "marks": {s: str(p) for s, p in engine._marks.items()},
        "symbols": {s: st.snapshot() for s, st in engine._symbols.items()},
        "halts": guard.snapshot_halts(),
        "now_ms": engine._journal.now_ms,
        **ledger.snapshot_seq(),
        **guard.snapshot_equity(),
        "trades": fills.trades,
        "wins": fills.wins,
    }


def restore_state(
    engine: TradingEngine, snapshot: dict[str, Any], strategy: Algorithm[Any, Any], *,
    restop: bool
) -> None:
    """Load ``snapshot`` into the fresh ``engine``; ``restop``: place the stops under the
    limits in force now (the saved ones were placed under the saved policy)."""
    pf_data = snapshot["portfolio"]
    pf = Portfolio.restore(engine.name, pf_data, engine.quote_asset)
    engine.portfolio = engine._desk.portfolio = engine._fills.portfolio = pf
    if restop:
        for pos in pf.positions.values():
            pos.stop_price = stop_price_for(pos.average_price, engine.limits)
    engine.controls.restore(snapshot.get("controls", {}))
    engine.tracker.restore(snapshot.get("tracker", {}))
    if "strategy" in snapshot:
        strategy.restore(snapshot["strategy"])
    engine._ledger.restore(snapshot)
    marks = engine._marks
    marks.clear()  # in place: the fill booker shares it
    marks.update((s, Decimal(p)) for s, p in snapshot.get("marks", {}).items())
    for s, data in snapshot.get("symbols", {}).items():
        if s in engine._symbols:
            engine._symbols[s].restore(data)
    engine._journal.now_ms = int(snapshot.get("now_ms", 0))
    engine._guard.restore(snapshot, pf_data["cash"])
    engine._fills.trades = int(snapshot.get("trades", 0))
    engine._fills.wins = int(snapshot.get("wins", 0))


__all__ = ["SNAPSHOT_VERSION", "check_version", "restore_state", "snapshot_of"]
