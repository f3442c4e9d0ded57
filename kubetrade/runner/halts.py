"""Why a runner sends no new orders: its halt sources, kept by source, not as text.

Two kinds of source (``HaltSource``):

- person-made (an emergency stop/close-all, ``spec.enabled: false``, the Strategy
  being deleted): they hold the engine's single manual halt, whose reason is the text
  of every such source (``"disabled: spec.enabled is false; emergency: stop by ..."``,
  what the dashboard and ``kubectl get strategies`` show). The sources themselves are
  persisted beside the engine snapshot, in the same transaction
  (``HaltBook.engine_snapshot``), so a restart knows which change lifts which halt.
- exchange health (an open circuit breaker, a reconciliation not yet passed): gates
  in front of the exchange, not engine halts. While the breaker is open no order goes
  out; while reconciliation is pending only protective exits do.

Pure: no I/O here (``HaltController`` applies changes, ``BreakerWatch`` follows the
breaker).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubetrade.domain.emergency import EmergencyAction
from kubetrade.domain.models import Order, Side

#: Orders that reduce risk: they go out while reconciliation is pending (an unprotected
#: losing position is the larger risk), though never to an exchange whose breaker is open.
PROTECTIVE_EXIT_REASONS = frozenset({"stop_loss", "close_all"})
#: Key of the runner's halt sources in the engine snapshot JSON (the engine ignores it).
SNAPSHOT_KEY = "runner_halt_sources"


class HaltSource(StrEnum):
    """One reason to stop new orders."""

    EMERGENCY_STOP = "emergency-stop"
    EMERGENCY_CLOSE_ALL = "emergency-close-all"
    DISABLED = "disabled"
    DELETING = "deleting"
    BREAKER = "breaker"
    RECONCILIATION = "reconciliation"

    @property
    def holds_engine(self) -> bool:
        """Does this source hold the engine's manual halt (person-made)?"""
        return self not in (HaltSource.BREAKER, HaltSource.RECONCILIATION)

    @property
    def label(self) -> str:
        """The source's name in the manual halt's text."""
        return "emergency" if self in EMERGENCY_SOURCES else self.value

    @classmethod
    def emergency(cls, action: str) -> HaltSource:
        """The source of an emergency ``stop`` or ``close-all``."""
        if action == EmergencyAction.CLOSE_ALL:
            return cls.EMERGENCY_CLOSE_ALL
        return cls.EMERGENCY_STOP


EMERGENCY_SOURCES = frozenset({HaltSource.EMERGENCY_STOP, HaltSource.EMERGENCY_CLOSE_ALL})


def is_protective_exit(order: Order) -> bool:
    """A stop-loss or close-all sell: it may pass a pending reconciliation."""
    return order.side is Side.SELL and order.reason in PROTECTIVE_EXIT_REASONS


@dataclass
class HaltBook:
    """The halt sources in force, source -> reason; trading runs when empty."""

    reasons: dict[HaltSource, str] = field(default_factory=dict)

    def set(self, source: HaltSource, reason: str | None) -> None:
        """Add (``reason``) or clear (None) one source. An emergency replaces the other
        emergency source: the latest action is the one in force."""
        if source in EMERGENCY_SOURCES:
            for other in EMERGENCY_SOURCES:
                self.reasons.pop(other, None)
        if reason is None:
            self.reasons.pop(source, None)
        else:
            self.reasons[source] = reason

    def holds(self, source: HaltSource) -> bool:
        return source in self.reasons

    @property
    def emergency(self) -> HaltSource | None:
        """The emergency source in force, if any."""
        return next((s for s in EMERGENCY_SOURCES if s in self.reasons), None)

    # ---- person-made sources: the engine's manual halt --------------------------------
    @property
    def manual(self) -> dict[HaltSource, str]:
        """The sources that hold the engine's manual halt."""
        return {s: r for s, r in self.reasons.items() if s.holds_engine}

    def text(self) -> str:
        """The manual halt's reason: ``label: reason`` of each source, by label."""
        parts = sorted((s.label, r) for s, r in self.manual.items())
        return "; ".join(f"{label}: {reason}" for label, reason in parts)

    def engine_snapshot(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The engine snapshot with the person-made sources beside it (one record, so
        one commit writes both)."""
        return {**snapshot, SNAPSHOT_KEY: {s.value: r for s, r in self.manual.items()}}

    def restore_manual(self, snapshot: Mapping[str, Any], halt_reason: str | None) -> None:
        """Person-made sources at restart, from an engine snapshot and the reason of its
        manual halt (None: no manual halt, so no source holds one). Snapshots written
        before the sources were persisted carry only the text: read from it."""
        for source in [s for s in self.reasons if s.holds_engine]:
            del self.reasons[source]
        if halt_reason is None:
            return
        saved = snapshot.get(SNAPSHOT_KEY) or {}
        valid = {s.value for s in HaltSource if s.holds_engine}
        sources = {HaltSource(k): str(v) for k, v in saved.items() if k in valid}
        self.reasons.update(sources or legacy_sources(halt_reason))

    # ---- exchange health: gates in front of the exchange --------------------------------
    @property
    def breaker_open(self) -> bool:
        return HaltSource.BREAKER in self.reasons

    @breaker_open.setter
    def breaker_open(self, value: bool) -> None:
        self.set(HaltSource.BREAKER, "exchange circuit breaker open" if value else None)

    @property
    def awaiting_reconciliation(self) -> bool:
        return HaltSource.RECONCILIATION in self.reasons

    @awaiting_reconciliation.setter
    def awaiting_reconciliation(self, value: bool) -> None:
        self.set(HaltSource.RECONCILIATION,
                 "reconciliation with the exchange pending" if value else None)

    def blocked_reason(self, order: Order) -> str:
        """Why the gates hold ``order`` back ("" when they let it out)."""
        if self.breaker_open:
            return "circuit_open"
        if self.awaiting_reconciliation and not is_protective_exit(order):
            return "awaiting_reconciliation"
        return ""

    @contextmanager
    def gates_lifted(self) -> Iterator[None]:
        """Both gates open for the block (close-all exits), as they were after it."""
        gate = (self.breaker_open, self.awaiting_reconciliation)
        self.breaker_open = self.awaiting_reconciliation = False
        try:
            yield
        finally:
            self.breaker_open, self.awaiting_reconciliation = gate


_LEGACY_LABELS = {"deleting": HaltSource.DELETING, "disabled": HaltSource.DISABLED,
                  "emergency": HaltSource.EMERGENCY_STOP}


def legacy_sources(text: str) -> dict[HaltSource, str]:
    """Sources from a manual halt's text alone (snapshots written before the sources
    were persisted). Text no source claims counts as an emergency stop: an emergency
    resume is the way out of it."""
    out: dict[str, str] = {}
    current: str | None = None
    for part in text.split("; ") if text else []:
        label, sep, reason = part.partition(": ")
        if sep and label in _LEGACY_LABELS and label not in out:
            out[label] = reason
            current = label
        elif current is not None:
            out[current] += "; " + part
        else:
            out["emergency"] = part
            current = "emergency"
    sources = {_LEGACY_LABELS[label]: reason for label, reason in out.items()}
    emergency = sources.pop(HaltSource.EMERGENCY_STOP, None)
    if emergency is not None:
        sources[HaltSource.emergency(emergency.split(" ", 1)[0])] = emergency
    return sources
