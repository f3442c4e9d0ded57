"""Forward validation of a two-symbol strategy when one symbol's candles arrive late.

Exchanges publish each symbol's klines independently, and a poll for one symbol can
fail while the other succeeds; the late candles must still be traded (in time order
per symbol) instead of ending a 48-hour run with an exception. The market is the paper
exchange (a real part), fed candle by candle as the clock moves.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.gonogo import Criteria
from kubetrade.domain.models import Candle
from kubetrade.exchange.paper import PaperBroker, PaperExchange, default_market
from kubetrade.resources import RiskPolicySpec, Strategy
from kubetrade.validation.forward import forward
from kubetrade.validation.plan import ValidationPlan

T0 = 1_726_876_800_000
STEP = 60_000
BTC, ETH = "BTC/USDT", "ETH/USDT"
MINUTES = 10


def bar(symbol: str, i: int) -> Candle:
    base = Decimal(60000 if symbol == BTC else 2500)
    price = base + Decimal((i * 7) % 5)  # a little movement, enough for the SMAs
    return Candle(T0 + i * STEP, price, price + 1, price - 1, price, Decimal(100))


class Market(ManualClock):
    """Sleeping moves time on and publishes every candle closed by then, except that
    ETH's candles are held back on the first wake-up (a lagging feed)."""

    def __init__(self, exchange: PaperExchange) -> None:
        super().__init__(T0)
        self.exchange = exchange
        self.published = {BTC: 0, ETH: 0}
        self.wakeups = 0

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.wakeups += 1
        closed = min(MINUTES, (self.now_ms() - T0) // STEP)
        for symbol in (BTC, ETH):
            upto = 1 if symbol == ETH and self.wakeups == 1 else closed
            while self.published[symbol] < upto:
                self.exchange.feed(symbol, bar(symbol, self.published[symbol]))
                self.published[symbol] += 1
        await asyncio.sleep(0)


async def test_late_candles_of_one_symbol_do_not_end_the_run() -> None:
    markets = {s: default_market(s) for s in (BTC, ETH)}
    exchange = PaperExchange(PaperBroker(markets, {"USDT": Decimal(0)}))
    clock = Market(exchange)
    exchange.clock = clock
    strategy = Strategy.model_validate({
        "metadata": {"name": "two-symbols"},
        "spec": {"algorithm": "sma-crossover", "parameters": {"fastPeriod": 2, "slowPeriod": 3},
                 "symbols": [BTC, ETH], "timeframe": "1m"},
    })
    plan = ValidationPlan(strategy=strategy, limits=RiskPolicySpec().to_limits(),
                          criteria=Criteria(), mode="forward", duration_s=MINUTES * 60)
    # the first wake-up publishes 3 BTC candles and 1 ETH candle; ETH's next two come
    # a poll later, after BTC's third has been traded
    outcome = await forward(plan, exchange, clock, settle_s=2 * 60 + 1)
    assert outcome.candles == 2 * MINUTES
    times = [t for t, _ in outcome.equity_curve]
    assert times == sorted(set(times))
    assert times[-1] == T0 + MINUTES * STEP
