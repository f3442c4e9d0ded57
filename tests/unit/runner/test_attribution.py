"""Account-level attribution (pure): baseline + foreign + every strategy's books +
unbooked fills explain the balance; fills are attributed by client order id."""

from __future__ import annotations

from decimal import Decimal as D

from kubetrade.domain.models import Fill, Side
from kubetrade.runner.attribution import (
    baseline_to_take,
    differences,
    expected_holdings,
    owner_of,
    signed_base,
)

PREFIXES = {"alpha": "kt-aaaa1111-", "beta": "kt-bbbb2222-"}


def _fill(cid: str, side: Side, qty: str, fee: str = "0", fee_asset: str = "USDT") -> Fill:
    return Fill("1", cid, "", "BTC/USDT", side, D(qty), D("100"), D(fee), fee_asset, 0)


def test_three_books_add_up_to_the_balance() -> None:
    holdings = {"alpha": {"BTC": D("0.1")}, "beta": {"BTC": D("0.2")}, "gamma": {}}
    expected = expected_holdings(["BTC"], {"BTC": D("1")}, {"BTC": D("0.05")}, holdings, {})
    assert expected["BTC"][0] == D("1.35")
    assert differences(expected, {"BTC": D("1.35")}, {"BTC": D("0.000005")}) == []
    diff = differences(expected, {"BTC": D("1.45")}, {"BTC": D("0.000005")})
    assert [(d.asset, d.expected, d.exchange) for d in diff] == [("BTC", D("1.35"), D("1.45"))]
    assert "strategies 0.3" in diff[0].detail


def test_an_unbooked_fill_of_a_member_explains_its_part() -> None:
    expected = expected_holdings(["BTC"], {}, {}, {"alpha": {"BTC": D("0.1")}},
                                 {"BTC": D("0.2")})
    assert differences(expected, {"BTC": D("0.3")}, {}) == []


def test_fills_are_attributed_by_client_order_id() -> None:
    assert owner_of("kt-aaaa1111-19211ef7a00-0", PREFIXES) == "alpha"
    assert owner_of("kt-bbbb2222-x1a22e92f0f8-0", PREFIXES) == "beta"  # its stop
    assert owner_of("web_1a2b3c", PREFIXES) is None  # by hand: foreign
    assert owner_of("kt-0badf00d-1-0", PREFIXES) is None  # not on this account's books


def test_a_fill_changes_the_base_balance_less_a_fee_in_base() -> None:
    assert signed_base(_fill("x", Side.BUY, "0.002", "0.000002", "BTC"), "BTC") == D("0.001998")
    assert signed_base(_fill("x", Side.SELL, "0.002", "0.2", "USDT"), "BTC") == D("-0.002")
    assert signed_base(_fill("x", Side.SELL, "0.002", "0.000002", "BTC"), "BTC") == D("-0.002002")


def test_the_baseline_is_what_no_strategy_owns_taken_once() -> None:
    holdings = {"alpha": {"BTC": D("0.1")}, "beta": {"BTC": D("0.2"), "ETH": D("1")}}
    balances = {"BTC": D("0.5"), "ETH": D("1")}
    take = baseline_to_take(["BTC", "ETH"], {"ETH": D("0")}, {}, holdings, balances)
    assert take == {"BTC": D("0.2")}  # ETH has one already
