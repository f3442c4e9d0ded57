"""Capital allocation: a strategy's budget against the account's free balance.

Several strategies can trade one exchange account. Each has a budget in the quote
asset: its ``initialCapital``, or a percentage of the account's quote balance. Before a
live runner starts (pre-flight, check "Capital Allocation"), its budget still to be
spent must fit in the account's free balance once the other strategies' reservations
are taken out; otherwise its books would size positions and measure drawdown against
money the account does not have. While it runs, an entry never spends more than the
strategy's own cash (its budget, ``Portfolio.cash``) nor the account's free balance as
last read (``Portfolio.spendable``).

Pure: amounts are Decimal in the quote asset; statuses are the runbook's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from kubetrade.domain.models import ZERO, Balance

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class AllocationInputs:
    """One strategy's claim on the account.

    ``initial_capital``: its budget in ``quote_asset`` unless ``pct_of_account`` (0-100)
    is given, which makes the budget that share of the account's quote balance (free +
    locked); ``committed``: the part of the budget already in positions or open orders
    (0 for a first start); ``reserved_by_others``: what the other strategies on the
    account have reserved and not yet spent (their uncommitted budgets).
    """

    quote_asset: str
    initial_capital: Decimal
    pct_of_account: Decimal | None = None
    committed: Decimal = ZERO
    reserved_by_others: Decimal = ZERO


def budget_of(inputs: AllocationInputs, balances: Mapping[str, Balance]) -> Decimal:
    """The strategy's budget in the quote asset (see ``AllocationInputs``)."""
    if inputs.pct_of_account is None:
        return inputs.initial_capital
    held = balances.get(inputs.quote_asset)
    total = held.total if held is not None else ZERO
    return total * inputs.pct_of_account / HUNDRED


def allocation_verdict(
    inputs: AllocationInputs, balances: Mapping[str, Balance] | None, error: str = ""
) -> tuple[str, str]:
    """(status, message): FAIL when the budget still to spend is more than the free
    quote balance left after the other strategies' reservations, WARN when balances
    could not be read, else PASS."""
    quote = inputs.quote_asset
    if balances is None:
        return "WARN", f"could not read balances{': ' + error if error else ''}"
    held = balances.get(quote)
    free = held.free if held is not None else ZERO
    budget = budget_of(inputs, balances)
    need = max(budget - inputs.committed, ZERO)
    available = free - inputs.reserved_by_others
    others = (f" after {inputs.reserved_by_others} {quote} reserved by other strategies"
              if inputs.reserved_by_others else "")
    what = (f"{inputs.pct_of_account}% of the account" if inputs.pct_of_account is not None
            else "initialCapital")
    if need > available:
        return "FAIL", (
            f"budget {budget} {quote} ({what}; {need} still to spend) is more than the "
            f"account's free {max(available, ZERO)} {quote}{others}: lower the budget or "
            "fund the account"
        )
    return "PASS", f"budget {budget} {quote} ({what}) fits in the free {free} {quote}{others}"


def spendable(cash: Decimal, account_free: Decimal | None) -> Decimal:
    """What an entry may spend: the strategy's own cash, and never more than the
    account's free quote balance when it is known (None: not read yet)."""
    if account_free is None:
        return cash
    return max(min(cash, account_free), ZERO)


__all__ = ["AllocationInputs", "allocation_verdict", "budget_of", "spendable"]
