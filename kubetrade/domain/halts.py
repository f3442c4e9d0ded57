"""Equity and the halts it triggers: daily loss, max drawdown, and the manual kill switch.

* ``daily_loss``   equity fell ``daily_loss_limit_pct`` below the UTC day's starting
                   equity; lifted automatically at the next UTC midnight.
* ``max_drawdown`` equity fell ``max_drawdown_pct`` below its peak; lifted only by a
                   person's resume, which also restarts the peak at current equity.
* ``manual``       the kill switch; lifted by a person's resume.

Money is Decimal in the quote asset; percentages are percent (5.0 = 5 %), 0 switches a
rule off; times are epoch milliseconds, days are UTC days (``ts_ms // DAY_MS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubetrade.domain import events as ev
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.models import ZERO
from kubetrade.domain.risk import HUNDRED, RiskLimits

DAY_MS = 86_400_000

HALT_MANUAL = "manual"
HALT_DAILY = "daily_loss"
HALT_DRAWDOWN = "max_drawdown"


@dataclass(slots=True)
class Halt:
    """One reason trading is halted: ``kind`` (a HALT_* value), who, since when, and
    until when (``until_ms``, only for the daily-loss halt)."""

    kind: str
    reason: str
    by: str
    since_ms: int
    until_ms: int | None = None


class EquityGuard:
    """Tracks equity, its peak and the day's start, and raises and lifts the halts."""

    __slots__ = (
        "day",
        "day_floor",
        "day_start",
        "dd_floor",
        "equity",
        "halts",
        "journal",
        "limits",
        "next_day_ms",
        "peak",
    )

    def __init__(self, limits: RiskLimits, journal: EventJournal, starting_cash: Decimal) -> None:
        self.limits = limits
        self.journal = journal
        self.halts: dict[str, Halt] = {}
        self.equity: Decimal = starting_cash
        self.peak = starting_cash
        self.dd_floor = ZERO
        self.day = -1
        self.next_day_ms = -1
        self.day_start = starting_cash
        self.day_floor = ZERO
        self.set_peak(starting_cash)

    @property
    def halted_reason(self) -> str:
        """Every halt in force as ``kind: reason``, joined by ``; `` (empty when none)."""
        return "; ".join(f"{h.kind}: {h.reason}" for h in self.halts.values())

    def set_limits(self, limits: RiskLimits) -> None:
        """A new policy: the floors follow at once (same peak, same day start)."""
        self.limits = limits
        self.set_peak(self.peak)
        self.set_day_start(self.day_start)

    def set_peak(self, equity: Decimal) -> None:
        self.peak = equity
        pct = self.limits.max_drawdown_pct
        self.dd_floor = equity * (HUNDRED - pct) / HUNDRED if pct > 0 else ZERO

    def set_day_start(self, equity: Decimal) -> None:
        self.day_start = equity
        pct = self.limits.daily_loss_limit_pct
        self.day_floor = equity * (HUNDRED - pct) / HUNDRED if pct > 0 else ZERO

    def new_day(self, day: int, now_ms: int) -> None:
        """UTC day ``day`` began: its baseline is current equity; an expired daily-loss
        halt is lifted."""
        self.day = day
        self.next_day_ms = (day + 1) * DAY_MS
        self.set_day_start(self.equity)
        halt = self.halts.get(HALT_DAILY)
        if halt is not None and halt.until_ms is not None and now_ms >= halt.until_ms:
            del self.halts[HALT_DAILY]
            self.journal.emit(
                "halt_lifted",
                "new UTC day: daily loss limit reset",
                actor=ev.ACTOR_RISK,
                rule=HALT_DAILY,
                day_start_equity=str(self.equity),
            )

    def mark(self, equity: Decimal) -> None:
        """New equity; the common no-news case costs three comparisons."""
        if self.dd_floor < equity <= self.peak and equity > self.day_floor:
            self.equity = equity
        else:
            self.check(equity)

    def check(self, equity: Decimal) -> None:
        """Take ``equity`` and apply the daily-loss and drawdown halts."""
        self.equity = equity
        if equity > self.peak:
            self.set_peak(equity)
        elif equity <= self.dd_floor and HALT_DRAWDOWN not in self.halts:
            self._halt_drawdown(equity)
        if equity <= self.day_floor and HALT_DAILY not in self.halts:
            self._halt_daily(equity)

    def _halt_drawdown(self, equity: Decimal) -> None:
        dd = (self.peak - equity) * HUNDRED / self.peak
        reason = (
            f"drawdown {dd:.2f}% from peak {self.peak:.2f} reached max_drawdown_pct "
            f"{self.limits.max_drawdown_pct}"
        )
        self._risk_halt(
            HALT_DRAWDOWN,
            reason,
            ev.MAX_DRAWDOWN_HALT,
            "max drawdown halt",
            None,
            equity=str(equity),
            peak=str(self.peak),
        )

    def _halt_daily(self, equity: Decimal) -> None:
        now = self.journal.now_ms
        loss = (self.day_start - equity) * HUNDRED / self.day_start
        # until the end of the UTC day in which the loss is seen: a loss seen at the
        # 00:00 mark (the day's last candle closing) halts the day beginning
        until = (max(self.day, now // DAY_MS) + 1) * DAY_MS
        reason = (
            f"daily loss {loss:.2f}% reached daily_loss_limit_pct "
            f"{self.limits.daily_loss_limit_pct}; halted until next UTC day"
        )
        self._risk_halt(
            HALT_DAILY,
            reason,
            ev.DAILY_LOSS_LIMIT,
            "daily loss limit",
            until,
            equity=str(equity),
            day_start_equity=str(self.day_start),
            until_ms=until,
        )

    def _risk_halt(
        self, rule: str, reason: str, kind: str, title: str, until: int | None, **detail: Any
    ) -> None:
        """Raise the risk halt ``rule`` (a HALT_* value) now, until ``until`` (ms; None:
        until a human resumes), and emit its critical ``halt`` event titled
        ``"<strategy>: <title>"`` with ``detail``."""
        self.halts[rule] = Halt(rule, reason, ev.ACTOR_RISK, self.journal.now_ms, until)
        self.journal.emit(
            "halt",
            reason,
            kind=kind,
            actor=ev.ACTOR_RISK,
            severity="critical",
            title=f"{self.journal.strategy}: {title}",
            rule=rule,
            **detail,
        )

    def halt_manual(self, reason: str, by: str, now_ms: int) -> None:
        """The kill switch (replaces an earlier manual halt)."""
        self.halts[HALT_MANUAL] = Halt(HALT_MANUAL, reason, by, now_ms)

    def lift_for_resume(self) -> list[str]:
        """Lift the manual and drawdown halts (a person resumed); the peak restarts at
        current equity when the drawdown halt is lifted. Returns the kinds lifted."""
        lifted = [k for k in (HALT_MANUAL, HALT_DRAWDOWN) if k in self.halts]
        for k in lifted:
            del self.halts[k]
        if HALT_DRAWDOWN in lifted:
            self.set_peak(self.equity)
        return lifted

    def risk_state(self) -> dict[str, Any]:
        """How close the equity rules are to firing; see ``TradingEngine.risk_state``."""
        eq = self.equity
        start, peak = self.day_start, self.peak
        daily = max(ZERO, (start - eq) * HUNDRED / start) if start > 0 else ZERO
        dd = max(ZERO, (peak - eq) * HUNDRED / peak) if peak > 0 else ZERO
        lim = self.limits
        return {
            "equity": eq,
            "day_start_equity": start,
            "peak_equity": peak,
            "daily_loss_pct": daily,
            "drawdown_pct": dd,
            "daily_loss_limit_used_ratio": (
                float(daily / lim.daily_loss_limit_pct) if lim.daily_loss_limit_pct > 0 else 0.0
            ),
            "drawdown_limit_used_ratio": (
                float(dd / lim.max_drawdown_pct) if lim.max_drawdown_pct > 0 else 0.0
            ),
            "halts": [h.kind for h in self.halts.values()],
        }

    def snapshot_halts(self) -> list[dict[str, Any]]:
        """The halts as JSON-able data (the snapshot's ``halts``)."""
        return [
            {"kind": h.kind, "reason": h.reason, "by": h.by, "since_ms": h.since_ms,
             "until_ms": h.until_ms}
            for h in self.halts.values()
        ]

    def snapshot_equity(self) -> dict[str, Any]:
        """The snapshot's ``equity``, ``peak``, ``day`` and ``day_start``."""
        return {
            "equity": str(self.equity),
            "peak": str(self.peak),
            "day": self.day,
            "day_start": str(self.day_start),
        }

    def restore(self, snapshot: dict[str, Any], cash: str) -> None:
        """Take back halts and equity from an engine snapshot (``cash``: the equity when
        the snapshot has none); the floors follow the limits in force now."""
        self.halts = {
            h["kind"]: Halt(h["kind"], h["reason"], h["by"], int(h["since_ms"]), h.get("until_ms"))
            for h in snapshot.get("halts", [])
        }
        self.equity = Decimal(snapshot.get("equity", cash))
        self.set_peak(Decimal(snapshot.get("peak", str(self.equity))))
        self.day = int(snapshot.get("day", -1))
        self.next_day_ms = (self.day + 1) * DAY_MS if self.day >= 0 else -1
        self.set_day_start(Decimal(snapshot.get("day_start", str(self.equity))))


__all__ = ["DAY_MS", "HALT_DAILY", "HALT_DRAWDOWN", "HALT_MANUAL", "EquityGuard", "Halt"]
