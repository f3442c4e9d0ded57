"""The combined time-weighted return (kubetrade/domain/twr.py): capital that joins is a
cash flow, not profit; sub-period returns are geometrically linked."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from kubetrade.domain.twr import combine


def test_textbook_deposit_is_linked_not_counted() -> None:
    """The GIPS textbook example: 1,000,000 grows to 1,050,000, 200,000 is added, the
    whole is 1,350,000 at the end: TWR = 1.05 * 1.08 - 1 = 13.40 %."""
    a = [(0, D(1_000_000)), (1, D(1_050_000)), (2, D(1_134_000))]
    b = [(1, D(200_000)), (2, D(216_000))]
    c = combine([a, b])
    assert c.total == [(0, D(1_000_000)), (1, D(1_250_000)), (2, D(1_350_000))]
    assert c.flows == [(1, D(200_000))]
    assert c.time_weighted_return == D("0.134")
    assert c.unit[-1] == (2, D(1_134_000))


def test_flat_strategies_joining_later_return_zero() -> None:
    a = [(t, D(10_000)) for t in range(0, 10)]
    b = [(t, D(10_000)) for t in range(5, 10)]
    c = combine([a, b])
    assert c.total[-1] == (9, D(20_000))
    assert {eq for _, eq in c.unit} == {D(10_000)}
    assert c.time_weighted_return == 0


@given(
    st.lists(st.integers(-300, 300), min_size=2, max_size=20),
    st.integers(1, 19),
    st.integers(1, 100_000),
)
def test_adding_a_strategy_that_does_nothing_is_never_profit(
    moves: list[int], start: int, capital: int
) -> None:
    """A flat strategy joining with any capital at any time: its start is no return,
    and every later period's return is the same move, diluted by the larger capital
    (same sign, never larger)."""
    a = []
    eq = D(10_000)
    for t, m in enumerate(moves):
        eq += D(m)
        a.append((t, eq))
    join = min(start, len(moves) - 1)
    b = [(t, D(capital)) for t in range(join, len(moves))]
    alone, together = combine([a]), combine([a, b])
    steps = list(zip(alone.unit, alone.unit[1:], together.unit, together.unit[1:], strict=False))
    for (_, a0), (_, a1), (_, t0), (_, t1) in steps:
        r_alone, r_together = a1 / a0 - 1, t1 / t0 - 1
        assert (r_alone > 0) == (r_together > 0) and (r_alone < 0) == (r_together < 0)
        assert abs(r_together) <= abs(r_alone) + D("1e-24")
