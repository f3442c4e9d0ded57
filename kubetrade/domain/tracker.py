"""Strategy tracker: switches a losing strategy off, and back on when it earns it.

Disable rule: after ``strategy_max_consecutive_losses`` closed trades in a row with
``pnl < 0`` (a trade with pnl >= 0 resets the count), the strategy is disabled: it
keeps receiving candles, but its BUY signals no longer place orders (SELL signals still
exit what it holds, since that reduces risk).

Re-enable rule (shadow trading): while disabled, every BUY/SELL signal is traded on
paper only, at the signal's close price, with the same fee rate on both legs, as a
"shadow trade". The strategy is re-evaluated ``strategy_re_enable_check_hours`` after
it was disabled. At that check it is re-enabled if its shadow trades in the window
numbered at least ``min_shadow_trades`` (default 1) and their summed net return is
positive; otherwise it stays disabled and a new window of the same length starts
(shadow results reset). A person can also re-enable it at any time (``enable(by)``).
Re-enabling resets the consecutive-loss count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubetrade.domain.models import ZERO, fields_of


@dataclass(slots=True)
class TrackerChange:
    """A state change the engine audits and alerts on."""

    enabled: bool
    ts_ms: int
    reason: str
    detail: dict[str, Any]


class StrategyTracker:
    __slots__ = (
        "check_ms",
        "consecutive_losses",
        "disabled_at_ms",
        "enabled",
        "fee_rate",
        "max_losses",
        "min_shadow_trades",
        "next_check_ms",
        "shadow_entries",
        "shadow_return",
        "shadow_trades",
        "total_losses",
        "total_wins",
    )

    def __init__(
        self,
        max_consecutive_losses: int,
        re_enable_check_hours: Decimal,
        fee_rate: Decimal = Decimal("0.001"),
        min_shadow_trades: int = 1,
    ) -> None:
        self.max_losses = max_consecutive_losses
        self.check_ms = int(re_enable_check_hours * 3_600_000)
        self.fee_rate = fee_rate
        self.min_shadow_trades = min_shadow_trades
        self.enabled = True
        self.consecutive_losses = 0
        self.total_wins = 0
        self.total_losses = 0
        self.disabled_at_ms: int | None = None
        self.next_check_ms: int | None = None
        self.shadow_entries: dict[str, Decimal] = {}
        self.shadow_trades = 0
        self.shadow_return = ZERO

    def pause_reason(self) -> str:
        """Why entries are paused, for status readers ('' while enabled): the losses that
        disabled the strategy and when the re-enable rule is next checked (UTC)."""
        if self.enabled:
            return ""
        when = ("" if self.next_check_ms is None else " until its re-check at " + datetime
                .fromtimestamp(self.next_check_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC"))
        return (f"disabled by the strategy tracker after {self.consecutive_losses} losing "
                f"trades in a row: entries paused{when} or until a person enables it")

    def configure(self, max_consecutive_losses: int, re_enable_check_hours: Decimal) -> None:
        """Hot change of the limits; a pending check moves to the new window length."""
        self.max_losses = max_consecutive_losses
        new_check = int(re_enable_check_hours * 3_600_000)
        if self.next_check_ms is not None and self.disabled_at_ms is not None:
            self.next_check_ms = self.next_check_ms - self.check_ms + new_check
        self.check_ms = new_check

    def on_trade(self, pnl: Decimal, ts_ms: int) -> TrackerChange | None:
        """Count a real closed trade; returns the change when it disables the strategy."""
        if pnl < 0:
            self.consecutive_losses += 1
            self.total_losses += 1
        else:
            self.consecutive_losses = 0
            self.total_wins += 1
        if self.enabled and self.max_losses > 0 and self.consecutive_losses >= self.max_losses:
            self.enabled = False
            self.disabled_at_ms = ts_ms
            self.next_check_ms = ts_ms + self.check_ms
            self.shadow_entries.clear()
            self.shadow_trades = 0
            self.shadow_return = ZERO
            return TrackerChange(
                False,
                ts_ms,
                f"{self.consecutive_losses} consecutive losing trades "
                f"(strategy_max_consecutive_losses={self.max_losses})",
                {
                    "consecutive_losses": self.consecutive_losses,
                    "re_evaluate_at_ms": self.next_check_ms,
                },
            )
        return None

    def on_shadow_signal(self, symbol: str, buy: bool, price: Decimal) -> None:
        """Trade a signal on paper while disabled (see the module docstring)."""
        if buy:
            self.shadow_entries.setdefault(symbol, price)
            return
        entry = self.shadow_entries.pop(symbol, None)
        if entry is None or entry <= 0:
            return
        self.shadow_trades += 1
        self.shadow_return += (price - entry) / entry - 2 * self.fee_rate

    def check(self, now_ms: int) -> TrackerChange | None:
        """Run the re-enable rule if its time has come; the change says whether the
        strategy came back (``enabled``) or stays disabled for another window."""
        if self.enabled or self.next_check_ms is None or now_ms < self.next_check_ms:
            return None
        shadow_return = self.shadow_return
        detail: dict[str, Any] = {
            "shadow_trades": self.shadow_trades,
            "shadow_return": str(self.shadow_return),
            "min_shadow_trades": self.min_shadow_trades,
        }
        if self.shadow_trades >= self.min_shadow_trades and self.shadow_return > 0:
            self._enable()
            return TrackerChange(
                True,
                now_ms,
                # the return read before _enable() reset it (it said 0.0000% before)
                f"shadow trades while disabled returned {shadow_return:.4%} over "
                f"{detail['shadow_trades']} trades",
                detail,
            )
        self.next_check_ms = now_ms + self.check_ms
        self.shadow_trades = 0
        self.shadow_return = ZERO
        detail["re_evaluate_at_ms"] = self.next_check_ms
        return TrackerChange(
            False,
            now_ms,
            f"stays disabled: shadow trades returned {shadow_return:.4%} "
            f"over {detail['shadow_trades']} trades (needs > 0 over at least "
            f"{self.min_shadow_trades})",
            detail,
        )

    def enable(self, ts_ms: int, by: str) -> TrackerChange | None:
        """A person re-enables the strategy by hand."""
        if self.enabled:
            return None
        self._enable()
        return TrackerChange(True, ts_ms, f"re-enabled by {by}", {"by": by})

    def _enable(self) -> None:
        self.enabled = True
        self.consecutive_losses = 0
        self.disabled_at_ms = None
        self.next_check_ms = None
        self.shadow_entries.clear()
        self.shadow_trades = 0
        self.shadow_return = ZERO

    def snapshot(self) -> dict[str, Any]:
        return {
            **fields_of(self, "enabled", "consecutive_losses", "total_wins", "total_losses",
                        "disabled_at_ms", "next_check_ms"),
            "shadow_entries": {k: str(v) for k, v in self.shadow_entries.items()},
            "shadow_trades": self.shadow_trades,
            "shadow_return": str(self.shadow_return),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.enabled = bool(data.get("enabled", True))
        self.consecutive_losses = int(data.get("consecutive_losses", 0))
        self.total_wins = int(data.get("total_wins", 0))
        self.total_losses = int(data.get("total_losses", 0))
        self.disabled_at_ms = data.get("disabled_at_ms")
        self.next_check_ms = data.get("next_check_ms")
        self.shadow_entries = {k: Decimal(v) for k, v in data.get("shadow_entries", {}).items()}
        self.shadow_trades = int(data.get("shadow_trades", 0))
        self.shadow_return = Decimal(data.get("shadow_return", "0"))
