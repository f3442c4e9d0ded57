"""Progress of a parameter sweep: combinations done of the total, the best so far, ETA.

Each scored combination is counted; at most every ``step_pct`` percent or every
``min_interval_s`` seconds (and always at the last one) a *tick* goes to

- the log, as a JSON progress line (``sweep progress``, fields ``done``, ``total``,
  ``percent``, ``eta_s``, ``best``);
- ``on_update(percent, eta_s, text)``, the validation progress protocol (the terminal
  bar of ``kubetrade validate``);
- ``watch(tick)``, for a reader that wants the figures (a cluster slice writes them
  where the operator gathers them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.sweeps import json_safe, parameters_text, rank_key

log = logging.getLogger("kubetrade.validation")

OnUpdate = Callable[[float, float | None, str], None]


@dataclass(frozen=True)
class SweepTick:
    """Where a sweep is: ``done`` of ``total`` combinations scored, the best result so
    far (see :mod:`kubetrade.domain.sweeps`) and the estimated seconds left."""

    done: int
    total: int
    best: dict[str, Any] | None
    eta_s: float | None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def text(self) -> str:
        """``"12/40 combinations, best so far fastPeriod=10 slowPeriod=30 (Sharpe 1.23)"``."""
        out = f"{self.done}/{self.total} combinations"
        if self.best is not None:
            out += f", best so far {parameters_text(self.best['parameters'])}"
            sharpe = self.best.get("sharpe")
            if isinstance(sharpe, int | float):
                out += f" (Sharpe {sharpe:.2f})"
        return out


@dataclass(eq=False)
class SweepProgress:
    """Counts scored combinations and reports ticks (see the module's text).

    ``wall`` is a wall clock: the ETA is about CPU time still needed."""

    total: int
    wall: Clock
    on_update: OnUpdate | None = None
    watch: Callable[[SweepTick], None] | None = None
    step_pct: float = 5.0
    min_interval_s: InitVar[float] = 10.0
    min_interval_ms: int = field(init=False)
    started_ms: int = field(init=False)
    _last_ms: int = field(init=False)
    _last_bucket: int = field(default=0, init=False)
    done: int = field(default=0, init=False)
    best: dict[str, Any] | None = field(default=None, init=False)

    def __post_init__(self, min_interval_s: float) -> None:
        self.min_interval_ms = int(min_interval_s * 1000)
        self.started_ms = self._last_ms = self.wall.now_ms()

    def add(self, result: Mapping[str, Any]) -> None:
        """One more combination scored (``result`` as ranked by the sweep)."""
        self.done += 1
        if "error" not in result and (self.best is None or
                                      rank_key(result) < rank_key(self.best)):
            self.best = json_safe(result)
        now = self.wall.now_ms()
        bucket = int(self.percent_done() // self.step_pct)
        if (self.done < self.total and bucket <= self._last_bucket
                and now - self._last_ms < self.min_interval_ms):
            return
        self._last_bucket, self._last_ms = bucket, now
        self._emit(now)

    def percent_done(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def start(self) -> None:
        """The first tick (0 done), so a reader sees the sweep from its first second."""
        self._emit(self.wall.now_ms())

    def _emit(self, now: int) -> None:
        elapsed_s = (now - self.started_ms) / 1000
        eta = (elapsed_s * (self.total - self.done) / self.done
               if self.done and elapsed_s > 0 else None)
        if self.done >= self.total:
            eta = 0.0
        tick = SweepTick(self.done, self.total, self.best, eta)
        log.info("sweep progress %s", tick.text(), extra={
            "done": tick.done, "total": tick.total, "percent": round(tick.percent, 1),
            "eta_s": eta, "best": tick.best})
        if self.on_update is not None:
            self.on_update(tick.percent, eta, tick.text())
        if self.watch is not None:
            self.watch(tick)
