"""One exchange account, three live strategies on it (issue 15 item 1; real ccxt client,
fake Binance, real Redis): they trade BTC/USDT at the same time, each with its own
on-exchange stops, and every reconciliation of every runner attributes the account's
BTC to the strategies' books: 0 mismatches. A breaker trip of one runner holds all
three; the resume brings all three back, again with 0 mismatches. A trade made by hand
on the exchange is flagged foreign within one reconciliation and is nobody's mismatch;
a deposit nobody's order explains is the account's difference, alerted once, until a
person accepts it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.runner.reconcile import ReconciliationResult
from kubetrade.state.accounts import AccountBooks
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance

SYMBOL = "BTC/USDT"
ACCOUNT = "binance-keys"
LIMITS = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                    max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))
#: name -> (fast, slow): three strategies that enter and leave at different candles
STRATEGIES = {"alpha": (2, 4), "beta": (3, 6), "gamma": (2, 5)}


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        # a real wait: a sleep that returned at once made the rate limiter spin on the
        # wall clock holding the event loop (~30 s a test, and Redis reads timed out)
        await asyncio.sleep(seconds)


class VirtualClock:
    """Wall time plus an offset the test advances; the fake's clock follows it."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)
        self.fake.set_clock_skew(self.offset_ms)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class Desk:
    """Three runners of one account, each with its candle stream."""

    def __init__(self, runners: list[Runner], keys: Keys) -> None:
        self.runners = runners
        self.keys = keys
        self.streams: dict[str, AsyncIterator[tuple[str, Candle]]] = {
            r.name: r.market.candles(r.cursor) for r in runners}
        self.results: list[ReconciliationResult] = []

    async def step(self, runner: Runner) -> None:
        symbol, candle = await anext(self.streams[runner.name])
        await runner.process_candle(symbol, candle)

    async def reconcile(self, runner: Runner) -> ReconciliationResult:
        result = await runner.reconcile_now("test")
        self.results.append(result)
        return result

    async def audit(self) -> list[dict[str, str]]:
        entries: Any = await self.runners[0].redis.xrange(self.keys.audit)
        return [f for _, f in entries]

    async def alert_kinds(self) -> list[str]:
        entries: Any = await self.runners[0].redis.xrange(self.keys.alerts)
        return [f["kind"] for _, f in entries]

    async def close(self) -> None:
        for r in self.runners:
            await r.exchange.close()


async def _desk(redis: Redis, fake: FakeBinance, clock: Clock, **breaker: Any) -> Desk:
    csv = bundled_candles(SYMBOL)
    assert csv is not None
    candles = load_candles(csv)
    keys = Keys("acct")
    runners = []
    for name, (fast, slow) in STRATEGIES.items():
        inner = BinanceExchange(fake.api_key, fake.secret, testnet=True, base_url=fake.url,
                                clock=clock)
        spec = RunnerSpec(name=name, algorithm="sma-crossover",
                          parameters={"fastPeriod": fast, "slowPeriod": slow},
                          symbols=[SYMBOL], mode="live", initial_capital=Decimal(3000),
                          account=ACCOUNT)
        runners.append(await Runner.restore(RunnerParts(
            spec, redis=redis, keys=keys, exchange=ResilientExchange(inner, clock, **breaker),
            market=ReplaySource({SYMBOL: candles}, clock, 0), clock=clock, limits=LIMITS,
            options=RunnerOptions(reconcile_interval_s=0, paper=False))))
    return Desk(runners, keys)


def _mismatched(results: list[ReconciliationResult]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in results if r.status in ("mismatch", "error")]


async def _trade_together(desk: Desk, candles: int) -> None:
    """The three runners trade at once (their exchange calls interleave), each
    reconciling every other candle while the others go on trading."""

    async def trade(runner: Runner) -> None:
        for i in range(candles):
            await desk.step(runner)
            if i % 2 == 0:
                await desk.reconcile(runner)

    await asyncio.gather(*(trade(r) for r in desk.runners))


async def test_three_strategies_trade_one_account_with_zero_mismatches(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    desk = await _desk(redis_client, fake_binance, VirtualClock(fake_binance))
    await _trade_together(desk, 60)
    orders = {r.name: len(r.orders) for r in desk.runners}
    assert all(n >= 3 for n in orders.values()), orders  # each traded, stops included
    for r in desk.runners:
        await desk.reconcile(r)
    assert _mismatched(desk.results) == []
    assert all(r.ok for r in desk.results[-3:])
    assert len(desk.results) >= 90
    # the account holds exactly what the three books say (the baseline was 0 BTC)
    held = sum((p.quantity for r in desk.runners for p in r.engine.positions.values()),
               Decimal(0))
    dust = sum((q for r in desk.runners for q in r.engine.portfolio.dust.values()), Decimal(0))
    total = (await desk.runners[0].exchange.fetch_balances())["BTC"].total
    assert abs(total - held - dust) <= Decimal("0.000005")
    assert fake_binance.state.duplicate_client_ids() == []
    audit = await desk.audit()
    assert not [a for a in audit if a["action"] == "reconciliation.mismatch"]
    assert "reconciliation_mismatch" not in await desk.alert_kinds()
    await desk.close()


async def _until(desk: Desk, done: Any, rounds: int, clock: VirtualClock) -> None:
    for _ in range(rounds):
        if done():
            return
        for r in desk.runners:
            await desk.step(r)
        clock.advance(60)
    raise AssertionError("not reached within the candles given")


async def test_a_breaker_trip_holds_every_runner_and_the_resume_frees_them_all(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    clock = VirtualClock(fake_binance)
    desk = await _desk(redis_client, fake_binance, clock, failure_threshold=3,
                       cooldown_s=30, backoff_initial_s=0.5, backoff_max_s=5,
                       lookup_attempts=3)
    alpha, beta, gamma = desk.runners
    await _until(desk, lambda: all(r.engine.positions for r in desk.runners[:2]), 800, clock)
    # --- the exchange goes away: alpha's breaker opens (its own calls fail) ----------
    fake_binance.start_outage()
    for _ in range(20):
        await desk.step(alpha)
        await desk.reconcile(alpha)  # an exchange call each time
        clock.advance(10)
        if alpha.breaker_open:
            break
    assert alpha.breaker_open
    accepted = len(fake_binance.state.accepted_client_ids)
    await desk.step(beta)
    await desk.step(gamma)
    # the others hold before their own calls failed: the account tripped
    assert beta.breaker_open and gamma.breaker_open
    assert beta.awaiting_reconciliation and gamma.awaiting_reconciliation
    audit = await desk.audit()
    held = {a["strategy"] for a in audit if a["action"] == "breaker.account_open"}
    assert held == {"beta", "gamma"}
    # --- the exchange is back: alpha probes, recovers, reconciles, frees the account ---
    fake_binance.end_outage()
    await _until(desk, lambda: not any(r.breaker_open or r.awaiting_reconciliation
                                       for r in desk.runners), 60, clock)
    for r in desk.runners:
        assert r.last_reconciliation is not None and r.last_reconciliation.ok, r.name
        await desk.reconcile(r)
    audit = await desk.audit()
    resumed = {a["strategy"] for a in audit
               if a["action"] == "trading.resumed_after_reconciliation"}
    assert resumed == {"alpha", "beta", "gamma"}
    # reconciliations that could not reach the exchange are errors, never mismatches
    failed = [json.loads(a["detail"]) for a in audit if a["action"] == "reconciliation.mismatch"]
    assert [f for f in failed if f["status"] != "error"] == []
    assert "reconciliation_mismatch" not in await desk.alert_kinds()
    assert _mismatched([r for r in desk.results if r.error == ""]) == []
    assert len(fake_binance.state.accepted_client_ids) >= accepted
    assert fake_binance.state.duplicate_client_ids() == []
    await desk.close()


@pytest.mark.fake_binance(balances={"USDT": Decimal(20000), "BTC": Decimal(0)})
async def test_a_trade_by_hand_is_foreign_and_a_deposit_waits_for_a_person(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    desk = await _desk(redis_client, fake_binance, VirtualClock(fake_binance))
    alpha, beta, gamma = desk.runners
    await _trade_together(desk, 30)
    for r in desk.runners:
        assert (await desk.reconcile(r)).ok
    # a person buys BTC on the Binance web page (no kt- client id)
    with fake_binance.state.lock:
        by_hand = fake_binance.state.new_order(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
             "newClientOrderId": "web_hand01"}, fake_binance.server_time_ms())
    assert by_hand.status == "FILLED"
    first = await desk.reconcile(alpha)  # within one reconciliation
    assert first.ok and first.mismatches == [], first.to_dict()
    assert first.account is not None
    flagged = first.account["foreign_trades"]
    assert [t["client_order_id"] for t in flagged] == ["web_hand01"]
    assert Decimal(flagged[0]["qty"]) == Decimal("0.001998")  # less its 0.1 % fee in BTC
    for r in (beta, gamma):  # the others see it explained, not flagged again
        again = await desk.reconcile(r)
        assert again.ok and again.account is not None and again.account["foreign_trades"] == []
    audit = await desk.audit()
    assert len([a for a in audit if a["action"] == "reconciliation.foreign_trades"]) == 1
    # coins nobody's order explains (a deposit): the account's difference, alerted once
    with fake_binance.state.lock:
        fake_binance.state.balances["BTC"] += Decimal("0.5")
    for r in desk.runners:
        result = await desk.reconcile(r)
        assert result.status == "mismatch" and result.mismatches == [], r.name
        assert result.account is not None
        assert [d["asset"] for d in result.account["differences"]] == ["BTC"]
    assert (await desk.alert_kinds()).count("reconciliation_mismatch") == 1
    # a person accepts what the account now holds: the baseline is taken again
    await AccountBooks(redis_client, desk.keys, ACCOUNT).forget_baseline(["BTC"])
    for r in desk.runners:
        assert (await desk.reconcile(r)).ok, r.name
    await desk.close()


async def test_a_budget_as_a_share_of_the_account_is_taken_at_the_first_start(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """spec.capitalPctOfAccount: 25 % of the account's 10,000 USDT is the strategy's
    starting cash (its books); a restart keeps the books written, not a new share."""
    clock = WallClock()
    csv = bundled_candles(SYMBOL)
    assert csv is not None

    async def start() -> Runner:
        inner = BinanceExchange(fake_binance.api_key, fake_binance.secret, testnet=True,
                                base_url=fake_binance.url, clock=clock)
        spec = RunnerSpec(name="share", algorithm="sma-crossover",
                          parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=[SYMBOL],
                          mode="live", account=ACCOUNT, capital_pct=Decimal(25))
        return await Runner.restore(RunnerParts(
            spec, redis=redis_client, keys=Keys("share"), exchange=ResilientExchange(inner, clock),
            market=ReplaySource({SYMBOL: load_candles(csv)}, clock, 0), clock=clock,
            limits=LIMITS, options=RunnerOptions(reconcile_interval_s=0, paper=False)))

    first = await start()
    assert first.engine.portfolio.starting_cash == Decimal(2500)
    symbol, candle = await anext(first.market.candles(first.cursor))
    await first.process_candle(symbol, candle)  # its books are written
    await first.exchange.close()
    fake_binance.set_balance("USDT", "4000")  # the account changed meanwhile
    again = await start()
    assert again.engine.portfolio.starting_cash == Decimal(2500)
    await again.exchange.close()


async def test_a_trip_left_by_a_runner_that_never_came_back_is_lifted_by_another(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """A runner tripped the account and died: the others hold, then (after
    ACCOUNT_TRIP_STALE_MS, its own breaker closed) one lifts it through its own
    reconciliation, and the account is closed for everyone."""
    clock = VirtualClock(fake_binance)
    desk = await _desk(redis_client, fake_binance, clock)
    alpha, beta, _ = desk.runners
    books = AccountBooks(redis_client, desk.keys, ACCOUNT)
    await books.set_breaker("open", "ghost", clock.now_ms())
    await desk.step(alpha)
    assert alpha.breaker_open and alpha.awaiting_reconciliation  # held by the account
    for _ in range(10):
        clock.advance(60)
        await desk.step(alpha)
        if not (alpha.breaker_open or alpha.awaiting_reconciliation):
            break
    assert not (alpha.breaker_open or alpha.awaiting_reconciliation)
    clock.advance(60)
    await desk.step(alpha)  # the next candle marks the account closed
    assert (await books.breaker())["state"] == "closed"
    await desk.step(beta)
    assert not beta.breaker_open
    actions = [(a["strategy"], a["action"]) for a in await desk.audit()]
    assert ("alpha", "breaker.account_resumed") in actions
    assert ("alpha", "trading.resumed_after_reconciliation") in actions
    await desk.close()
