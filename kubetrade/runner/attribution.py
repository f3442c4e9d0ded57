"""Account-level attribution, pure (issue 15 item 1): does every coin on the account
belong to someone?

Per base asset the account should hold::

    baseline (owned by no strategy, taken once)
  + foreign  (net fills of orders no strategy made: by hand, another installation)
  + the books of every strategy on the account (positions + dust)
  + unbooked (fills of a strategy's orders the exchange made, not booked by it yet)

within half a quantity step. A difference that none of these explains is an
*unattributed* difference of the account: nobody's mismatch in particular, and the one
thing a person must look at. Fills are attributed by client order id: a member's
``kt-<digest>-`` prefix is that member's, anything else is foreign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from kubetrade.domain.models import Fill, Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class AccountDiff:
    """An asset whose balance nothing explains: ``expected`` (books) vs ``exchange``."""

    asset: str
    expected: Decimal
    exchange: Decimal
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"asset": self.asset, "expected": str(self.expected),
                "exchange": str(self.exchange), "detail": self.detail}


def _add(into: dict[str, Decimal], asset: str, qty: Decimal) -> None:
    into[asset] = into.get(asset, ZERO) + qty


def expected_holdings(
    assets: Iterable[str], baseline: Mapping[str, Decimal], foreign: Mapping[str, Decimal],
    holdings: Mapping[str, Mapping[str, Decimal]], unbooked: Mapping[str, Decimal],
) -> dict[str, tuple[Decimal, str]]:
    """asset -> (quantity the account should hold, how it adds up as text)."""
    out: dict[str, tuple[Decimal, str]] = {}
    for asset in sorted(set(assets)):
        books = sum((h.get(asset, ZERO) for h in holdings.values()), ZERO)
        parts = (baseline.get(asset, ZERO), foreign.get(asset, ZERO), books,
                 unbooked.get(asset, ZERO))
        out[asset] = (sum(parts, ZERO),
                      "baseline {} + foreign {} + strategies {} + unbooked {}".format(*parts))
    return out


def differences(
    expected: Mapping[str, tuple[Decimal, str]], balances: Mapping[str, Decimal],
    tolerance: Mapping[str, Decimal],
) -> list[AccountDiff]:
    """The assets whose balance (``balances``: asset -> total) differs from ``expected``
    by more than ``tolerance`` (asset -> half a quantity step; 1e-8 when unknown)."""
    out = []
    for asset, (want, how) in sorted(expected.items()):
        have = balances.get(asset, ZERO)
        if abs(have - want) > tolerance.get(asset, Decimal("1e-8")):
            out.append(AccountDiff(asset, want, have, how))
    return out


def owner_of(client_order_id: str, prefixes: Mapping[str, str]) -> str | None:
    """The member (by ``prefixes``: name -> ``kt-<digest>-``) whose order this is; None
    when no member made it (foreign)."""
    for name, prefix in prefixes.items():
        if client_order_id.startswith(prefix):
            return name
    return None


def signed_base(fill: Fill, base: str) -> Decimal:
    """What ``fill`` changed of the ``base`` asset's balance: + bought, - sold, less a
    fee paid in the base asset."""
    qty = fill.quantity if fill.side is Side.BUY else -fill.quantity
    return qty - (fill.fee if fill.fee_asset == base else ZERO)


def baseline_to_take(
    assets: Iterable[str], baseline: Mapping[str, Decimal], foreign: Mapping[str, Decimal],
    holdings: Mapping[str, Mapping[str, Decimal]], balances: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """For assets without a baseline yet: what the account holds that no strategy owns
    (balance - foreign - every strategy's books)."""
    out: dict[str, Decimal] = {}
    for asset in sorted(set(assets) - set(baseline)):
        books = sum((h.get(asset, ZERO) for h in holdings.values()), ZERO)
        out[asset] = balances.get(asset, ZERO) - foreign.get(asset, ZERO) - books
    return out
