"""Capital allocation in a running runner (issue 15 item 3): each reconciliation reads
the account's free quote balance, and no entry spends more than that, whatever the
strategy's own cash (other strategies on the account hold the rest)."""

from __future__ import annotations

from decimal import Decimal

from redis.asyncio import Redis

from kubetrade.domain.models import Side
from kubetrade.state.keys import Keys
from tests.integration.runner.test_runner import make_runner


async def test_entries_are_capped_by_the_account_free_balance(redis_client: Redis) -> None:
    runner = await make_runner(redis_client, Keys("kt"))
    assert runner.engine is not None and runner.paper is not None
    await runner.reconcile_now("periodic")
    assert runner.engine.portfolio.account_free == Decimal("10000")
    # the account's USDT is mostly another strategy's now: 60 left free
    runner.paper.broker._free["USDT"] = Decimal("60")
    await runner.reconcile_now("periodic")
    assert runner.engine.portfolio.account_free == Decimal("60")
    seen = 0
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        seen += 1
        buys = [o for o in runner.orders.values() if o.side is Side.BUY]
        if buys or seen > 1400:
            break
    assert buys, "the replay gave no entry signal"
    notional = buys[0].quantity * (buys[0].average_price or Decimal(0))
    assert Decimal(0) < notional <= Decimal("60")
    # its cash is 10000: without the account's cap the position would be 10 % of that
    assert runner.engine.portfolio.cash > Decimal("9900")
