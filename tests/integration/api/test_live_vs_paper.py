"""``GET /api/live-vs-paper`` (issue 20) over HTTP with a real Redis: what a live
runner's twin stored (state/twin.py) is shown with both equity curves from the twin's
start, the size step, and the validation report's figures beside live's; a strategy
without a twin is not listed, and asking for it by name is 404."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.twin import BookFigures, compare, outcomes_total
from kubetrade.state.reports import write_validation_latest
from kubetrade.state.store import Changes, StateStore
from kubetrade.state.twin import TwinRecord, TwinStore, summary_fields
from tests.fixtures.api import MakeApi

D = Decimal


async def test_live_against_its_twin_over_http(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    live_store = StateStore(api.redis, api.keys, "btc-live")
    for ts, eq in ((1_000, "10000"), (61_000, "10001"), (121_000, "9990"), (181_000, "9985")):
        await live_store.commit(Changes(equity=(ts, D(eq)),
                                        summary={"equity": eq, "starting_cash": "10000",
                                                 "pnl": str(D(eq) - 10000), "win_rate": "0.5"}))
    comparison = compare(BookFigures(D("9985"), D("10000"), D("3"), 2),
                         BookFigures(D("10010"), D("10000"), D("2"), 2),
                         outcomes_total([]), D("0.1"))
    record = TwinRecord(engine={}, broker={}, comparison=comparison.to_dict(), size_pct=25,
                        ramp={"step": 0, "period_start_ms": 61_000}, started_ms=61_000,
                        updated_ms=181_000)
    twin = TwinStore(api.redis, api.keys, "btc-live")
    for ts, twin_eq in ((61_000, D("10001")), (121_000, D("10005")), (181_000, D("10010"))):
        await twin.save(record, (ts, twin_eq), summary_fields(comparison.divergence_pct, 25))
    await StateStore(api.redis, api.keys, "eth-paper").commit(Changes(summary={"equity": "1"}))
    await write_validation_latest(api.redis, api.keys, {
        "decision": "GO", "strategy": "btc-live", "finished_ms": 5,
        "metrics": {"total_return": 0.02, "win_rate": 0.6, "max_drawdown": 0.03}})

    r = await api.client.get("/api/live-vs-paper")
    assert r.status_code == 200, r.text
    (row,) = r.json()  # eth-paper has no twin
    assert row["name"] == "btc-live" and row["size_pct"] == 25
    assert row["comparison"]["divergence_pct"] == "0.2500"
    assert row["comparison"]["diverged"] is True
    assert row["comparison"]["pnl_gap"] == "-25"
    # both curves from the twin's start (the live point before go-live left out)
    assert row["equity"]["twin"] == [[61_000, "10001"], [121_000, "10005"], [181_000, "10010"]]
    assert row["equity"]["live"] == [[61_000, "10001"], [121_000, "9990"], [181_000, "9985"]]
    ref = row["reference"]
    assert ref["decision"] == "GO" and ref["validation"]["total_return"] == 0.02
    assert abs(ref["live"]["total_return"] - (-0.0015)) < 1e-12
    assert abs(ref["gap"]["win_rate"] - (-0.1)) < 1e-12

    thin = await api.client.get("/api/live-vs-paper", params={"strategy": "btc-live",
                                                              "points": 2})
    assert thin.status_code == 200
    assert thin.json()[0]["equity"]["twin"] == [[61_000, "10001"], [181_000, "10010"]]
    missing = await api.client.get("/api/live-vs-paper", params={"strategy": "eth-paper"})
    assert missing.status_code == 404
    summary = await api.redis.hgetall(api.keys.summary("btc-live"))
    assert summary["twin_divergence_pct"] == "0.2500" and summary["size_pct"] == "25"
