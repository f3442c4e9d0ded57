"""Status helpers: conditions in the Kubernetes shape, and the runner summary folded in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


def iso(ts_ms: int) -> str:
    """RFC 3339, second precision, as Kubernetes writes timestamps."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """The conditions list of one object; ``set`` keeps lastTransitionTime unless the
    status flips, so `kubectl describe` shows when something really changed."""

    def __init__(self, current: list[dict[str, Any]] | None, generation: int | None) -> None:
        self.items = [dict(c) for c in (current or [])]
        self.generation = generation
        self.flipped: list[dict[str, Any]] = []

    def get(self, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.items if c.get("type") == type_), None)

    def set(self, type_: str, status: bool | None, reason: str, message: str, now_ms: int) -> None:
        text = "Unknown" if status is None else ("True" if status else "False")
        new = {
            "type": type_,
            "status": text,
            "reason": reason,
            "message": message,
            "observedGeneration": self.generation,
        }
        old = self.get(type_)
        if old is not None and old.get("status") == text:
            new["lastTransitionTime"] = old.get("lastTransitionTime") or iso(now_ms)
        else:
            new["lastTransitionTime"] = iso(now_ms)
            self.flipped.append(new)
        if self.generation is None:
            del new["observedGeneration"]
        self.items = [c for c in self.items if c.get("type") != type_] + [new]
        self.items.sort(key=lambda c: str(c.get("type")))


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def fold_summary(summary: dict[str, str]) -> dict[str, Any]:
    """The runner's Redis summary as Strategy status fields (display strings for money,
    the win rate as a percentage)."""
    out: dict[str, Any] = {}
    pnl = _decimal(summary.get("pnl"))
    if pnl is not None:
        out["pnl"] = str(pnl.quantize(Decimal("0.01")))
    equity = _decimal(summary.get("equity"))
    if equity is not None:
        out["equity"] = str(equity.quantize(Decimal("0.01")))
    trades = _decimal(summary.get("trades"))
    if trades is not None:
        out["trades"] = int(trades)
    rate = _decimal(summary.get("win_rate"))
    if rate is not None:
        out["winRate"] = f"{rate * 100:.1f}%"
    positions = _decimal(summary.get("open_positions"))
    if positions is not None:
        out["openPositions"] = int(positions)
    divergence = _decimal(summary.get("twin_divergence_pct"))
    if divergence is not None:  # live runners with a paper twin (issue 20)
        out["twinDivergence"] = f"{divergence:.2f}%"
    size = _decimal(summary.get("size_pct"))
    if size is not None:
        out["sizeStep"] = f"{size:.0f}%"
    reason = summary.get("halted_reason")
    out["haltedReason"] = reason if reason and reason != "None" else None
    updated = _decimal(summary.get("updated_ms"))
    if updated is not None and updated > 0:
        out["summaryUpdated"] = iso(int(updated))
    return out
