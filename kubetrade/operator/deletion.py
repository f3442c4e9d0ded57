"""Deleting a Strategy, decided as a pure function: wait for the runner to cancel its
open orders (and close its positions when ``closePositionsOnDelete``), but never
forever.

The wait ends when nothing is pending, when ``settings.delete_timeout`` seconds have
passed (default 120), or at once when the Strategy carries the annotation
``kubetrade.io/abandon-open-orders: "true"`` -- the documented way out when the
exchange or Redis cannot answer. Every step says so in the Strategy's status (phase
``Terminating``, the ``Ready`` condition) and in an Event, from the first second.
"""

from __future__ import annotations

from dataclasses import dataclass

ABANDON_ANNOTATION = "kubetrade.io/abandon-open-orders"


@dataclass(frozen=True)
class DeleteObserved:
    """What the delete wait depends on."""

    name: str
    open_orders: tuple[str, ...] | None  #: None: unknown (Redis unreachable)
    positions: tuple[str, ...] | None  #: to close (``()`` unless asked); None: unknown
    waited_s: float
    timeout_s: float
    abandon: bool  #: the abandon annotation is "true"


@dataclass(frozen=True)
class DeleteStep:
    """Where the delete stands: ``done`` -> remove the runner now."""

    done: bool
    pending: bool  #: something was left (orders, positions, or unknown)
    reason: str  #: Event and condition reason
    message: str


def _pending_text(o: DeleteObserved) -> str:
    orders = "Redis unreachable" if o.open_orders is None else f"{len(o.open_orders)} open order(s)"
    if o.positions is None:
        return orders + ", positions unknown"
    return orders + (f", positions to close: {', '.join(o.positions)}" if o.positions else "")


def delete_step(o: DeleteObserved) -> DeleteStep:
    """The next step of deleting Strategy ``o.name`` (see the module doc)."""
    pending = o.open_orders is None or bool(o.open_orders) or o.positions is None
    pending = pending or bool(o.positions)
    if not pending:
        return DeleteStep(True, False, "RunnerStopped", "no open orders left; runner removed")
    left = _pending_text(o)
    if o.abandon:
        return DeleteStep(
            True,
            True,
            "OpenOrdersAbandoned",
            f"{ABANDON_ANNOTATION}=true: runner removed with {left} left on the exchange",
        )
    if o.waited_s >= o.timeout_s:
        return DeleteStep(
            True,
            True,
            "DeleteTimedOut",
            f"after {o.waited_s:.0f}s: runner removed with {left} left on the exchange",
        )
    return DeleteStep(
        False,
        True,
        "WaitingForRunner",
        f"waiting up to {o.timeout_s - o.waited_s:.0f}s more for the runner ({left}); "
        f"to stop waiting: kubectl annotate strategy {o.name} {ABANDON_ANNOTATION}=true",
    )
