"""Reconciliation flags every disagreement with the exchange and nothing else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubetrade.domain.models import (
    Balance,
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    make_client_order_id,
)
from kubetrade.runner.reconcile import ReconciliationResult, client_id_prefix, reconcile

MARKETS = {
    "BTC/USDT": MarketInfo(
        "BTC/USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"),
        Decimal("5"),
    )
}
CID = make_client_order_id("btc-sma", 1_700_000_000_000, 1)
PREFIX = client_id_prefix(CID)


def _order(cid: str, status: OrderStatus = OrderStatus.OPEN, filled: str = "0") -> Order:
    return Order(
        cid, "btc-sma", "BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal("0.1"), Decimal("60000"),
        status=status, filled_quantity=Decimal(filled),
    )


def _run(**overrides: object) -> dict[str, Any]:
    args: dict[str, object] = {
        "strategy": "btc-sma",
        "ts_ms": 1,
        "trigger": "start",
        "symbols": ["BTC/USDT"],
        "markets": MARKETS,
        "positions": {"BTC/USDT": Position("btc-sma", "BTC/USDT", Decimal("0.5"), Decimal(1), 0)},
        "local_orders": [_order(CID)],
        "balances": {"BTC": Balance("BTC", Decimal("0.7"))},
        "exchange_orders": [_order(CID)],
        "baseline": {"BTC": Decimal("0.2")},
        "client_id_prefix": PREFIX,
    }
    args.update(overrides)
    return reconcile(**args).to_dict()  # type: ignore[arg-type]


def test_matching_state_is_ok() -> None:
    result = _run()
    assert result["ok"] is True and result["status"] == "ok"
    assert result["positions_checked"] == 1 and result["orders_checked"] == 1


def test_rounding_below_half_a_step_is_not_a_mismatch() -> None:
    assert _run(balances={"BTC": Balance("BTC", Decimal("0.700004"))})["ok"] is True


def test_dust_left_by_fees_is_expected_on_the_account() -> None:
    balances = {"BTC": Balance("BTC", Decimal("0.70008"))}
    assert _run(balances=balances)["ok"] is False
    assert _run(balances=balances, dust={"BTC/USDT": Decimal("0.00008")})["ok"] is True


def test_balance_mismatch_names_asset_and_both_sides() -> None:
    result = _run(balances={"BTC": Balance("BTC", Decimal("0.6"), Decimal("0.05"))})
    assert result["mismatches"] == [
        {
            "kind": "balance",
            "subject": "BTC",
            "local": "0.7",
            "exchange": "0.65",
            "detail": "position+dust 0.5 + baseline 0.2",
        }
    ]


def test_order_differences_both_ways_and_fill_state() -> None:
    other = make_client_order_id("btc-sma", 1_700_000_060_000, 1)
    foreign = make_client_order_id("someone-else", 1_700_000_060_000, 1)
    result = _run(
        local_orders=[_order(CID), _order("x", OrderStatus.FILLED)],
        exchange_orders=[_order(other), _order(foreign)],
    )
    kinds = {(m["kind"], m["subject"]) for m in result["mismatches"]}
    assert kinds == {("order_missing_on_exchange", CID), ("order_unknown_locally", other)}
    partial = _run(exchange_orders=[_order(CID, OrderStatus.PARTIALLY_FILLED, "0.05")])
    assert [m["kind"] for m in partial["mismatches"]] == ["order_state"]


def test_open_order_with_an_earlier_id_scheme_is_still_ours() -> None:
    """A runner that now qualifies ids with its namespace still recognises the open
    orders it persisted under the bare-name ids, and ignores other strategies' orders."""
    qualified = client_id_prefix(make_client_order_id("team-a/btc-sma", 0, 0))
    other = _order(make_client_order_id("team-b/btc-sma", 1_700_000_000_000, 1))
    result = _run(client_id_prefix=qualified, exchange_orders=[_order(CID), other])
    assert result["ok"] is True, result["mismatches"]
    missing = _run(client_id_prefix=qualified, exchange_orders=[other])
    kinds = [m["kind"] for m in missing["mismatches"]]
    assert kinds == ["order_missing_on_exchange"]


def test_the_mismatch_gauge_counts_the_accounts_unattributed_differences() -> None:
    """An account difference (a deposit nothing explains) must reach the Prometheus
    alert too, not only Telegram: the count is ours plus the account's differences."""
    diff = {"asset": "BTC", "expected": "0.1", "actual": "0.6"}

    def result(account: dict[str, Any] | None) -> ReconciliationResult:
        return ReconciliationResult("a", 1, "periodic", account=account)

    mismatch = result({"account": "ns/keys", "status": "mismatch", "differences": [diff]})
    assert mismatch.status == "mismatch" and mismatch.mismatch_count == 1
    assert result({"account": "ns/keys", "status": "pending", "differences": [diff]}
                  ).mismatch_count == 0
    assert result(None).mismatch_count == 0
