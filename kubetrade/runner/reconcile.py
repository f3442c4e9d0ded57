"""Reconciliation: does what we believe match what the exchange says?

Pure comparison, no I/O: the runner fetches balances and open orders, calls
:func:`reconcile`, stores and publishes the result, and alerts + audits every
mismatch. Nothing is overwritten here: a mismatch is a question for a human (or for
the next reconciliation, once an in-flight fill lands), not something to paper over.

Balances are compared against ``baseline + position`` per base asset, where the
baseline is what the account held of that asset when this strategy first started, so
coins that were there before the bot do not count as a mismatch.

Open orders are attributed by client order id: this strategy's prefix (``kt-<digest>-``)
is ours; another ``kt-`` prefix is another kubetrade strategy's on the same account
(its own reconciliation checks it); any other id was not made by kubetrade (an order
placed by hand on the exchange): reported as ``foreign_orders``, never as a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.models import (
    ZERO,
    Balance,
    MarketInfo,
    Mismatch,
    Order,
    Position,
    fields_of,
)


@dataclass
class ReconciliationResult:
    strategy: str
    ts_ms: int
    trigger: str
    positions_checked: int = 0
    orders_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str = ""
    #: Open orders on our symbols no kubetrade strategy made (by hand): flagged only.
    foreign: list[dict[str, str]] = field(default_factory=list)
    #: The account-level verdict of a live runner (``runner/account.py`` AccountResult
    #: as a dict: account, status ok|pending|mismatch, differences, foreign_trades).
    account: dict[str, Any] | None = None

    @property
    def account_status(self) -> str:
        """ok | pending | mismatch of the account's books ("ok" without them)."""
        return str(self.account["status"]) if self.account else "ok"

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.error and self.account_status == "ok"

    @property
    def mismatch_count(self) -> int:
        """The strategy's own mismatches plus its account's unattributed differences:
        what ``kubetrade_reconciliation_mismatches`` counts (so the PrometheusRule's
        KubetradeReconciliationMismatch fires for an account difference too)."""
        account = (len(self.account.get("differences") or [])
                   if self.account and self.account_status == "mismatch" else 0)
        return len(self.mismatches) + account

    @property
    def status(self) -> str:
        """ok | error | mismatch (ours or the account's unattributed) | pending."""
        if self.ok:
            return "ok"
        if self.error:
            return "error"
        if self.mismatches or self.account_status == "mismatch":
            return "mismatch"
        return "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            **fields_of(self, "strategy", "ts_ms", "trigger", "status", "ok",
                        "positions_checked", "orders_checked"),
            "mismatches": [m.to_dict() for m in self.mismatches],
            "error": self.error,
            "foreign_orders": list(self.foreign),
            "account": self.account,
        }


def base_assets(markets: Mapping[str, MarketInfo], symbols: Iterable[str]) -> dict[str, str]:
    """symbol -> base asset, for the symbols this strategy trades."""
    out: dict[str, str] = {}
    for symbol in symbols:
        info = markets.get(symbol)
        out[symbol] = info.base if info else symbol.split("/")[0]
    return out


def reconcile(
    *,
    strategy: str,
    ts_ms: int,
    trigger: str,
    symbols: Iterable[str],
    markets: Mapping[str, MarketInfo],
    positions: Mapping[str, Position],
    local_orders: Iterable[Order],
    balances: Mapping[str, Balance],
    exchange_orders: Iterable[Order],
    baseline: Mapping[str, Decimal],
    client_id_prefix: str,
    dust: Mapping[str, Decimal] | None = None,
    check_balances: bool = True,
) -> ReconciliationResult:
    """Compare balances (per base asset: baseline + position + dust, within half a
    quantity step) and open orders (ours by ``client_id_prefix`` or by a known id).
    ``check_balances=False``: the account's books check the balances instead
    (``runner/account.py``, many strategies on one account)."""
    result = ReconciliationResult(strategy=strategy, ts_ms=ts_ms, trigger=trigger)
    symbols = list(symbols)
    if check_balances:
        checked, mismatches = _balance_mismatches(
            symbols, markets, positions, balances, baseline, dust or {}
        )
        result.positions_checked = checked
        result.mismatches.extend(mismatches)
    else:
        result.positions_checked = len(set(base_assets(markets, symbols).values()))
    checked, mismatches = _order_mismatches(
        symbols, local_orders, exchange_orders, client_id_prefix
    )
    result.orders_checked = checked
    result.mismatches.extend(mismatches)
    result.foreign = foreign_orders(symbols, exchange_orders)
    return result


#: The start of every client order id kubetrade makes (``models.make_client_order_id``).
KUBETRADE_ID_START = "kt-"


def foreign_orders(
    symbols: Iterable[str], exchange_orders: Iterable[Order]
) -> list[dict[str, str]]:
    """Open orders on ``symbols`` whose client id no kubetrade strategy made (a person's
    order on the exchange), as {client_order_id, symbol, side, quantity, status}."""
    wanted = set(symbols)
    return [
        {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
         "quantity": str(o.quantity), "status": o.status.value}
        for o in sorted(exchange_orders, key=lambda o: o.client_order_id)
        if o.symbol in wanted and not o.client_order_id.startswith(KUBETRADE_ID_START)
        and not o.status.is_terminal
    ]


def _balance_mismatches(
    symbols: list[str],
    markets: Mapping[str, MarketInfo],
    positions: Mapping[str, Position],
    balances: Mapping[str, Balance],
    baseline: Mapping[str, Decimal],
    dust: Mapping[str, Decimal],
) -> tuple[int, list[Mismatch]]:
    """(assets checked, balance mismatches)."""
    expected: dict[str, Decimal] = {}
    for symbol, asset in base_assets(markets, symbols).items():
        pos = positions.get(symbol)
        # unsellable remainders (below the exchange's minimum) stay on the account
        left = dust.get(symbol, ZERO)
        expected[asset] = expected.get(asset, ZERO) + (pos.quantity if pos else ZERO) + left
    out: list[Mismatch] = []
    for asset, qty in sorted(expected.items()):
        want = baseline.get(asset, ZERO) + qty
        bal = balances.get(asset)
        have = bal.total if bal else ZERO
        if abs(have - want) > _tolerance(markets, asset):
            out.append(
                Mismatch(
                    kind="balance",
                    subject=asset,
                    local=str(want),
                    exchange=str(have),
                    detail=f"position+dust {qty} + baseline {baseline.get(asset, ZERO)}",
                )
            )
    return len(expected), out


def _order_mismatches(
    symbols: list[str],
    local_orders: Iterable[Order],
    exchange_orders: Iterable[Order],
    client_id_prefix: str,
) -> tuple[int, list[Mismatch]]:
    """(orders checked, open-order mismatches: missing, unknown, fill differences)."""
    local_open = {
        o.client_order_id: o
        for o in local_orders
        if not o.status.is_terminal and o.symbol in symbols
    }
    # ours: the strategy's id prefix, or an order we know by id (ids made under an
    # earlier id scheme, e.g. before ids were qualified with the namespace)
    remote_open = {
        o.client_order_id: o
        for o in exchange_orders
        if o.client_order_id.startswith(client_id_prefix) or o.client_order_id in local_open
    }
    out = [
        Mismatch("order_missing_on_exchange", cid, local_open[cid].status.value, "absent")
        for cid in sorted(set(local_open) - set(remote_open))
    ]
    out += [
        Mismatch("order_unknown_locally", cid, "absent", remote_open[cid].status.value)
        for cid in sorted(set(remote_open) - set(local_open))
    ]
    for cid in sorted(set(local_open) & set(remote_open)):
        mine, theirs = local_open[cid], remote_open[cid]
        if mine.filled_quantity != theirs.filled_quantity:
            out.append(
                Mismatch("order_state", cid, f"filled {mine.filled_quantity}",
                         f"filled {theirs.filled_quantity}")
            )
    return len(set(local_open) | set(remote_open)), out


def _tolerance(markets: Mapping[str, MarketInfo], asset: str) -> Decimal:
    """Half a quantity step of the asset's market: smaller differences are rounding."""
    steps = [m.qty_step for m in markets.values() if m.base == asset]
    return (min(steps) / 2) if steps else Decimal("1e-8")


def client_id_prefix(client_order_id_example: str) -> str:
    """``kt-<digest>-`` of a deterministic client id: the part shared by one strategy."""
    parts = client_order_id_example.split("-")
    return "-".join(parts[:2]) + "-"
