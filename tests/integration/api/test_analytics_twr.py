"""GET /api/analytics over HTTP with two strategies where the second starts an hour
later (case tests/data/cases/analytics-combined-curve): the overall curve shows the
capital joining, the overall return and Sharpe are time-weighted (0 here, not +100 %)."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import ClosedTrade
from kubetrade.state.store import Changes, StateStore
from tests.fixtures.api import MakeApi
from tests.integration.api._seed import T0, strategy_manifest


async def test_strategy_joining_later_is_not_profit(make_api: MakeApi) -> None:
    api = await make_api()
    for name, start in (("early", 0), ("late", 60)):
        await api.desired.put_strategy(strategy_manifest(name), "test")
        store = StateStore(api.redis, api.keys, name)
        for i in range(start, 120):
            equity = Decimal("10000") - (Decimal(i - start) if name == "late" else 0)
            await store.commit(Changes(equity=(T0 + i * 60_000, equity)))
    h = await api.auth()
    body = (await api.client.get("/api/analytics", params={"max_points": 4},
                                 headers=h)).json()
    overall = body["overall"]
    assert Decimal(overall["equity_curve"][0]["equity"]) == 10000
    assert Decimal(overall["equity_curve"][-1]["equity"]) == 20000 - 59
    # only "late" lost (59 over its hour, half the capital by then): ~ -0.3 %, not +99.7 %
    assert -0.0031 < overall["metrics"]["total_return"] < -0.0029
    assert overall["metrics"]["sharpe"] < 0
    assert abs(body["strategies"]["late"]["metrics"]["total_return"] + 0.0059) < 1e-12


async def test_trades_say_when_fees_are_estimated_or_unvalued(make_api: MakeApi) -> None:
    """Case bnb-fee-pnl: a trade whose BNB fee had no price says so in /api/trades."""
    api = await make_api()
    await api.desired.put_strategy(strategy_manifest("bnb"), "test")
    trade = ClosedTrade("bnb-1", "bnb", "BTC/USDT", Decimal("0.1"), Decimal("60000"),
                        Decimal("60030"), T0, T0 + 60_000, Decimal("4.5"), Decimal("-1.5"),
                        "signal", fees_estimated=True, fees_unvalued="0.0075 BNB")
    await StateStore(api.redis, api.keys, "bnb").commit(Changes(closed_trades=[trade]))
    items = (await api.client.get("/api/trades", headers=await api.auth())).json()["items"]
    assert [(t["fees_estimated"], t["fees_unvalued"]) for t in items] == [(True, "0.0075 BNB")]
