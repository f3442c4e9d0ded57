"""Weight throttle on a ManualClock: the budget per minute holds, Retry-After stops
everything, and the exchange's own used-weight count is adopted."""

from __future__ import annotations

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.exchange.ratelimit import WEIGHTS, WeightLimiter


async def test_spends_at_most_the_budget_per_minute() -> None:
    clock = ManualClock(0)
    lim = WeightLimiter(clock, limit_per_minute=1200, budget=0.5)  # 600 a minute
    start = clock.now_ms()
    for _ in range(30):
        await lim.acquire(WEIGHTS["fetch_balances"])  # 20 each: 600 in total
    assert clock.now_ms() == start  # within budget: no wait
    await lim.acquire(20)
    # one more needs 20 tokens at 10 per second
    assert clock.now_ms() - start == pytest.approx(2000, abs=2)
    # over a long run the average stays at the budget
    for _ in range(300):
        await lim.acquire(20)
    spent_after_bucket_emptied = 301 * 20
    minutes = (clock.now_ms() - start) / 60_000
    assert spent_after_bucket_emptied / minutes == pytest.approx(600, rel=0.01)


async def test_retry_after_pauses_every_call() -> None:
    clock = ManualClock(0)
    paused: list[float] = []
    lim = WeightLimiter(clock, on_pause=paused.append)
    lim.pause(7)
    assert not lim.try_acquire(1)
    await lim.acquire(1)
    assert clock.now_ms() == 7000
    assert paused == [7]
    lim.pause(2)
    lim.pause(1)  # a shorter pause does not shorten the longer one
    assert lim.paused_for_s == 2
    assert paused == [7, 2]


async def test_adopts_server_reported_weight() -> None:
    clock = ManualClock(0)
    lim = WeightLimiter(clock, limit_per_minute=6000, budget=1.0)
    lim.observe_used_weight(5990)  # another process on our IP spent most of it
    assert lim.tokens == pytest.approx(10)
    assert not lim.try_acquire(20)
    lim.observe_used_weight(10)  # lower than what we think: ignored
    assert lim.tokens == pytest.approx(10)


def test_rejects_impossible_weights() -> None:
    with pytest.raises(ValueError, match="budget"):
        WeightLimiter(ManualClock(), budget=0)
    with pytest.raises(ValueError, match="limit_per_minute"):
        WeightLimiter(ManualClock(), limit_per_minute=0)


async def test_weight_larger_than_bucket_is_an_error() -> None:
    lim = WeightLimiter(ManualClock(), limit_per_minute=100, budget=0.5)
    with pytest.raises(ValueError, match="exceeds the bucket"):
        await lim.acquire(80)
