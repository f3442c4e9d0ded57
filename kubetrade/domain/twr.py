"""Time-weighted return of several strategies combined, across the capital they bring.

A strategy that starts later brings its capital with it: that is an external cash
flow into the combined account, not profit. Funds report such a portfolio with a
*time-weighted* return, as the GIPS standards require ("time-weighted rates of return
that adjust for external cash flows must be used; periodic returns must be
geometrically linked", GIPS provision 2.A.2, CFA Institute; the GIPS 2020 Standards for
Firms keep the time-weighted return and valuation at every large external cash flow).
Here the portfolio is valued at every point of any curve, so this is the *true* TWR,
not an approximation (Modified Dietz):

    V_t    total equity at t: every started strategy's latest equity
    CF_t   the starting equity of every strategy whose first point is at t
    r_t    = (V_t - CF_t) / V_{t-1} - 1          (0 for the first point)
    I_t    = I_{t-1} * (1 + r_t),   I_0 = 1       (growth of one unit)
    TWR    = I_last - 1

A strategy enters at its first equity point with that equity (its capital: the
runner's first point is its starting equity), so adding one changes V but never I.
Money is Decimal throughout; inputs are ``(timestamp_ms, equity)`` pairs per strategy,
each sorted by time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from kubetrade.domain.models import ZERO

Curve = Sequence[tuple[int, Decimal]]

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Combined:
    """The combined account: ``total`` is the money curve (V_t, steps up when capital
    joins), ``unit`` the time-weighted curve I_t scaled by the first total (V_0 * I_t,
    same units as money; returns, drawdown and Sharpe are computed on it), ``flows``
    the capital that joined, per timestamp."""

    total: list[tuple[int, Decimal]]
    unit: list[tuple[int, Decimal]]
    flows: list[tuple[int, Decimal]]

    @property
    def time_weighted_return(self) -> Decimal:
        """I_last - 1 (0 for fewer than two points)."""
        if len(self.unit) < 2 or self.unit[0][1] <= 0:
            return ZERO
        return self.unit[-1][1] / self.unit[0][1] - ONE


def combine(curves: Sequence[Curve]) -> Combined:
    """Total and time-weighted curves of ``curves`` (see the module docstring)."""
    events = sorted(
        ((ts, i, eq) for i, curve in enumerate(curves) for ts, eq in curve),
        key=lambda e: (e[0], e[1]),
    )
    latest: dict[int, Decimal] = {}
    total: list[tuple[int, Decimal]] = []
    unit: list[tuple[int, Decimal]] = []
    flows: list[tuple[int, Decimal]] = []
    index = ONE
    k = 0
    while k < len(events):
        ts = events[k][0]
        flow = ZERO
        while k < len(events) and events[k][0] == ts:
            _, i, eq = events[k]
            if i not in latest:
                flow += eq  # a strategy's start: its capital joins
            latest[i] = eq
            k += 1
        value = sum(latest.values(), ZERO)
        if total and total[-1][1] > 0:
            index *= (value - flow) / total[-1][1]
        total.append((ts, value))
        unit.append((ts, total[0][1] * index))
        if flow and len(total) > 1:
            flows.append((ts, flow))
    return Combined(total=total, unit=unit, flows=flows)


__all__ = ["Combined", "combine"]
