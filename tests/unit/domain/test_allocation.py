"""Capital allocation (issue 15 item 3): a strategy's budget against the account's free
balance, in pre-flight (Capital Allocation) and for every entry (never more than the
strategy's cash nor the account's free quote balance as last read)."""

from __future__ import annotations

from decimal import Decimal as D

from kubetrade.domain import preflight as pf
from kubetrade.domain.allocation import AllocationInputs, allocation_verdict, budget_of
from kubetrade.domain.models import Balance, Side
from tests.unit.domain._helpers import BTC, ETH, SymbolScripted, candle, make, refusals, step
from tests.unit.validation.test_preflight_checks import good

USDT = {"USDT": Balance("USDT", D("5000"), D("1000"))}


def test_budget_is_initial_capital_or_a_share_of_the_account() -> None:
    assert budget_of(AllocationInputs("USDT", D("2000")), USDT) == D("2000")
    # 25 % of 6000 held (free 5000 + locked 1000)
    assert budget_of(AllocationInputs("USDT", D("2000"), pct_of_account=D(25)), USDT) == 1500


def test_budget_within_the_free_balance_passes() -> None:
    status, text = allocation_verdict(AllocationInputs("USDT", D("5000")), USDT)
    assert status == "PASS" and "fits in the free 5000 USDT" in text


def test_budget_over_the_free_balance_fails_naming_both() -> None:
    status, text = allocation_verdict(AllocationInputs("USDT", D("10000")), USDT)
    assert status == "FAIL"
    assert "budget 10000 USDT (initialCapital; 10000 still to spend)" in text
    assert "free 5000 USDT" in text


def test_other_strategies_reservations_and_own_positions_count() -> None:
    others = AllocationInputs("USDT", D("3000"), reserved_by_others=D("2500"))
    status, text = allocation_verdict(others, USDT)
    assert status == "FAIL" and "free 2500 USDT after 2500 USDT reserved by other" in text
    # a restart: 1000 of the budget is already in a position, 2000 left to spend
    restarted = AllocationInputs("USDT", D("3000"), committed=D("1000"),
                                 reserved_by_others=D("2500"))
    assert allocation_verdict(restarted, USDT)[0] == "PASS"


def test_balances_unknown_warns() -> None:
    status, text = allocation_verdict(AllocationInputs("USDT", D("1")), None, "timeout")
    assert (status, text) == ("WARN", "could not read balances: timeout")


def test_preflight_adds_the_check_when_the_inputs_carry_an_allocation() -> None:
    inputs = good()
    assert pf.CAPITAL_ALLOCATION not in [r.name for r in pf.run_checks(inputs, 1).results]
    over = pf.run_checks(
        pf.PreflightInputs(**{**inputs.__dict__,
                              "allocation": AllocationInputs("USDT", D("10000"))}), 1)
    last = over.results[-1]
    assert (last.name, last.status, last.ours) == ("Capital Allocation", pf.CheckStatus.FAIL,
                                                   True)
    assert not over.passed


def test_entry_never_spends_more_than_the_account_free_balance() -> None:
    eng, broker = make({0: Side.BUY, 2: Side.BUY}, max_position_size_pct=50)
    eng.portfolio.account_free = D("1000")  # other strategies hold the rest
    orders, _ = step(eng, broker, BTC, candle(0, "100"))
    # 50 % of 10000 would be 5000; the account has 1000 free: 1000 / 1.001 fee / margin
    notional = orders[0].quantity * 100
    assert D("990") < notional <= D("1000")


def test_entry_refused_when_the_account_has_nothing_free() -> None:
    eng, broker = make({0: Side.BUY})
    eng.portfolio.account_free = D("0")
    orders, _ = step(eng, broker, BTC, candle(0, "100"))
    assert orders == [] and refusals(eng) == ["insufficient_cash"]


def test_each_entry_reserves_its_spend_until_the_next_balance_read() -> None:
    strat = SymbolScripted(per_symbol={BTC: {0: Side.BUY}, ETH: {0: Side.BUY}})
    eng, broker = make(symbols=(BTC, ETH), strategy=strat, max_position_size_pct=50)
    eng.portfolio.account_free = D("1500")
    first, _ = step(eng, broker, BTC, candle(0, "100"))
    second, _ = step(eng, broker, ETH, candle(0, "10"))
    spent = first[0].quantity * 100 + second[0].quantity * 10
    assert spent <= D("1500")
    assert eng.portfolio.account_free is not None and eng.portfolio.account_free >= 0


def test_a_sale_gives_its_proceeds_back_to_the_account_free_balance() -> None:
    """Between two balance reads, round trips must not starve the strategy: the entry
    reserves its spend, the exit's proceeds come back (else each trade shrank the next
    until entries were dust; a runner's outage test timed out on it)."""
    eng, broker = make({0: Side.BUY, 1: Side.SELL, 2: Side.BUY}, max_position_size_pct=50)
    eng.portfolio.account_free = D("6000")  # the first entry (5000) leaves ~1000 free
    first, _ = step(eng, broker, BTC, candle(0, "100"))
    step(eng, broker, BTC, candle(1, "100"))
    again, _ = step(eng, broker, BTC, candle(2, "100"))
    assert first and again
    assert again[0].quantity * 100 > first[0].quantity * 100 * D("0.99")
