"""The forward run: paper-trade on the exchange's closed candles as they close.

Each newly closed candle goes through ``run_replay`` (the replay loop, one candle at a
time), so forward and replay validations execute identical code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.clock import Clock, ManualClock, SystemClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import ClosedTrade
from kubetrade.exchange.base import ExchangeError
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import run_replay
from kubetrade.exchange.testnet import testnet_setting
from kubetrade.marketdata.timeframes import timeframe_ms
from kubetrade.validation.plan import (
    RunOutcome,
    ValidationPlan,
    engine_and_broker,
    open_positions,
)

log = logging.getLogger("kubetrade.validation")

#: A candle as (open time in ms, symbol, candle), the order a batch is traded in.
Batch = list[tuple[int, str, Any]]


async def forward(
    plan: ValidationPlan,
    exchange: Any,
    clock: Clock,
    progress: Callable[[float], None] | None = None,
    settle_s: float = 2.0,
) -> RunOutcome:
    """Paper-trade forward for ``plan.duration_s`` on the exchange's closed candles.

    Each newly closed candle goes through ``run_replay`` (the replay loop, one candle
    at a time), so forward and replay validations execute identical code. Indicators
    are warmed up on the candles that closed before the start, without trading on
    them, so the run can trade from its first minute. Exchange errors while polling are
    logged and retried at the next poll: a 48-hour run must survive a blip.
    ``progress(elapsed_ms)`` is called after every poll. ValueError when the markets
    cannot be loaded or a symbol is not traded.
    """
    spec = plan.strategy.spec
    symbols: list[str] = list(spec.symbols)
    step = timeframe_ms(spec.timeframe)
    engine, broker = engine_and_broker(plan, await _markets(exchange, symbols))
    start_ms = clock.now_ms()
    end_ms = start_ms + plan.duration_s * 1000
    cursor = await _warm_up(engine, exchange, clock, spec.timeframe, symbols, start_ms)
    run = _ForwardRun(engine, broker, cursor, curve=[(start_ms, engine.equity)])
    while True:
        run.trade(await _poll(exchange, spec.timeframe, symbols, cursor, end_ms))
        now = clock.now_ms()
        if progress is not None:
            progress(min(now, end_ms) - start_ms)
        done = all(cursor[s] + 2 * step > end_ms for s in symbols)
        if done or now >= end_ms + 10 * step:
            break
        next_close = min(cursor[s] + 2 * step for s in symbols)
        wait_s = max(1.0, (next_close - now) / 1000 + settle_s)
        await clock.sleep(wait_s)
    if progress is not None:
        progress(end_ms - start_ms)  # no candle can close inside the window any more
    return run.outcome()


async def _markets(exchange: Any, symbols: list[str]) -> dict[str, Any]:
    """The exchange's market of each symbol; ValueError when one is not traded."""
    try:
        known = await exchange.load_markets()
    except ExchangeError as exc:
        raise ValueError(f"forward validation: cannot load the exchange's markets: {exc}") from exc
    missing = [s for s in symbols if s not in known]
    if missing:
        raise ValueError(f"symbols: not traded on the exchange: {', '.join(missing)}")
    # the exchange's real filters (tick, lot, min notional), never a made-up default
    return {s: known[s] for s in symbols}


async def _warm_up(
    engine: TradingEngine,
    exchange: Any,
    clock: Clock,
    timeframe: str,
    symbols: list[str],
    start_ms: int,
) -> dict[str, int]:
    """Feed the candles closed before ``start_ms`` to the indicators (no orders); returns
    the cursor: per symbol, the open time (ms) of the last candle consumed."""
    step = timeframe_ms(timeframe)
    cursor: dict[str, int] = {}
    need = engine.strategy.warmup + 1
    for s in symbols:
        history: list[Any] = []
        for attempt in range(3):
            try:
                history = await exchange.fetch_candles(
                    s, timeframe, since_ms=start_ms - (need + 1) * step, limit=need + 2
                )
                break
            except ExchangeError as exc:
                # without warm-up the strategy just starts signalling later
                log.warning("forward validation: warm-up candles for %s failed (%d/3): %s",
                            s, attempt + 1, exc)
                await clock.sleep(2.0)
        history = [c for c in history if c.ts_ms + step <= start_ms]
        for c in history:
            engine.strategy.on_candle(s, c)  # whole candles: rules read high/low/volume
        cursor[s] = history[-1].ts_ms if history else (start_ms // step) * step - step
    return cursor


async def _poll(
    exchange: Any, timeframe: str, symbols: list[str], cursor: dict[str, int], end_ms: int
) -> Batch:
    """The candles closed since each symbol's cursor and before ``end_ms``, in time
    order; a symbol whose fetch fails is logged and tried again at the next poll."""
    step = timeframe_ms(timeframe)
    batch: Batch = []
    for s in symbols:
        try:
            fresh = await exchange.fetch_candles(
                s, timeframe, since_ms=cursor[s] + step, limit=1000
            )
        except ExchangeError as exc:
            log.warning("forward validation: fetching %s candles failed, retrying: %s",
                        s, exc)
            continue
        for c in fresh:
            if c.ts_ms > cursor[s] and c.ts_ms + step <= end_ms:
                batch.append((c.ts_ms, s, c))
    batch.sort(key=lambda x: (x[0], x[1]))
    return batch


@dataclass
class _ForwardRun:
    """What a forward run has traded so far (the cursor is shared with the poller)."""

    engine: TradingEngine
    broker: PaperBroker
    cursor: dict[str, int]
    curve: list[tuple[int, Decimal]]
    trades: list[ClosedTrade] = field(default_factory=list)
    candles: int = 0
    rejected: int = 0
    first_ms: int | None = None

    def trade(self, batch: Batch) -> None:
        """Each candle of ``batch`` not yet consumed, through the replay loop."""
        for ts, s, c in batch:
            if ts <= self.cursor[s]:
                continue
            self.cursor[s] = ts
            # A clock per candle: one symbol's candles may arrive a poll late, after a
            # later candle of another symbol was traded, and a shared simulated clock
            # cannot go back (it raised and ended the run).
            result = run_replay(self.engine, self.broker, [c], ManualClock(ts), symbol=s)
            self.trades.extend(result.trades)
            self.rejected += result.rejected
            self.candles += 1
            self.first_ms = ts if self.first_ms is None else min(self.first_ms, ts)
            point = result.equity_curve[-1]
            if self.curve and self.curve[-1][0] >= point[0]:
                # late candle: the curve stays in time order; its latest point takes
                # the equity as it is now
                self.curve[-1] = (self.curve[-1][0], point[1])
            else:
                self.curve.append(point)

    def outcome(self) -> RunOutcome:
        return RunOutcome(
            trades=self.trades,
            equity_curve=self.curve,
            candles=self.candles,
            data_start_ms=self.first_ms,
            data_end_ms=self.curve[-1][0] if self.curve else None,
            open_positions=len(self.engine.positions),
            rejected_orders=self.rejected,
            positions=open_positions(self.engine),
        )


async def forward_on_binance(
    plan: ValidationPlan, progress: Callable[[float], None] | None = None
) -> RunOutcome:
    """:func:`forward` on Binance's public market data (no keys are needed, so none are
    given): the testnet when BINANCE_TESTNET says so, else as the strategy says;
    KUBETRADE_EXCHANGE_URL overrides the address. Sets ``plan.source``."""
    env = os.environ
    setting = testnet_setting(env.get("BINANCE_TESTNET"))
    testnet = setting if setting is not None else bool(plan.strategy.spec.exchange.testnet)
    url = env.get("KUBETRADE_EXCHANGE_URL") or None
    clock = SystemClock()
    # public market data only: no keys are needed, so none are given
    exchange = BinanceExchange(testnet=testnet, base_url=url, clock=clock)
    plan.source = f"exchange:{url or ('binance-testnet' if testnet else 'binance')}"
    try:
        return await forward(plan, exchange, clock, progress)
    finally:
        await exchange.close()
