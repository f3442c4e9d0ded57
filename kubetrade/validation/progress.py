"""Progress of a validation run: percentage and ETA, for the log and the ValidationRun."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TextIO

from kubetrade.domain.clock import Clock

log = logging.getLogger("kubetrade.validation")


class Progress:
    """Percentage and ETA for the log (and the ValidationRun status).

    ETA uses a *wall* clock even when the simulation runs on a manual one: a replay's
    simulated time says nothing about how long the CPU still needs.
    """

    def __init__(
        self,
        total: float,
        wall: Clock,
        on_update: Callable[[float, float | None, str], None] | None = None,
        step_pct: float = 5.0,
        min_interval_s: float = 10.0,
    ) -> None:
        self.total = max(float(total), 1e-9)
        self.wall = wall
        self.on_update = on_update
        self.step_pct = step_pct
        self.min_interval_ms = int(min_interval_s * 1000)
        self.started_ms = wall.now_ms()
        self._last_pct = 0.0
        self._last_bucket = 0
        self._last_ms = self.started_ms
        self.pct = 0.0
        self.eta_s: float | None = None

    def text(self) -> str:
        eta = "unknown" if self.eta_s is None else _duration_text(self.eta_s)
        return f"{self.pct:.0f}% (ETA {eta})"

    def update_of(self, done: int, total: int) -> None:
        """``update`` for callers that learn the total as they go (``run_replay``)."""
        self.total = max(float(total), 1e-9)
        self.update(done)

    def update(self, done: float, force: bool = False) -> None:
        now = self.wall.now_ms()
        self.pct = max(0.0, min(100.0, done / self.total * 100))
        elapsed_s = (now - self.started_ms) / 1000
        self.eta_s = (
            elapsed_s * (100 - self.pct) / self.pct if self.pct > 0 and elapsed_s > 0 else None
        )
        if self.pct >= 100:
            self.eta_s = 0.0
        bucket = int(self.pct // self.step_pct)
        due = (
            force
            or bucket > self._last_bucket
            or (now - self._last_ms >= self.min_interval_ms and self.pct > self._last_pct)
        )
        if not due:
            return
        self._last_bucket = bucket
        self._last_pct = self.pct
        self._last_ms = now
        log.info("validation progress %s", self.text(),
                 extra={"percent": round(self.pct, 1), "eta_s": self.eta_s})
        if self.on_update is not None:
            self.on_update(self.pct, self.eta_s, self.text())


def _duration_text(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


class TerminalBar:
    """A one-line progress bar with ETA for a terminal (``\r``-rewritten on ``stream``),
    ended by a newline at 100%; JSON progress lines still go to the log. A sweep's
    text (combinations done, best so far) is shown after the ETA."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width

    def __call__(self, pct: float, eta_s: float | None, text: str) -> None:
        filled = int(self.width * pct / 100)
        eta = "?" if eta_s is None else _duration_text(eta_s)
        # a sweep's text (combinations done, best so far) follows the ETA; a run's own
        # text only repeats the percentage and ETA. ESC[K clears a longer previous line.
        detail = f" {text}\x1b[K" if "ETA" not in text else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {pct:5.1f}% "
                          f"ETA {eta:>7}{detail}")
        if pct >= 100:
            self.stream.write("\n")
        self.stream.flush()
