"""The writer lease of a candle series, on a fake clock: one holder at a time, renewal by
the holder only, take-over once the holder's lease expired, a holder that cannot renew
stops writing before anyone else may take the series."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.marketdata.writer_lease import FileLease, Tenure

SERIES = "candles:binance:BTC/USDT:1m"
T0 = 1_800_000_000_000


async def test_file_lease_one_holder_until_it_expires(tmp_path: Path) -> None:
    lease = FileLease(tmp_path)
    assert await lease.acquire(SERIES, "a", 30_000, T0)
    assert not await lease.acquire(SERIES, "b", 30_000, T0 + 1_000)
    assert await lease.acquire(SERIES, "a", 30_000, T0 + 20_000)  # renewed to T0 + 50 s
    assert not await lease.acquire(SERIES, "b", 30_000, T0 + 49_999)
    assert await lease.acquire(SERIES, "b", 30_000, T0 + 50_000)  # a stopped renewing
    assert not await lease.acquire(SERIES, "a", 30_000, T0 + 50_001)  # a's renewal refused


async def test_file_lease_release_by_the_holder_only(tmp_path: Path) -> None:
    lease = FileLease(tmp_path)
    assert await lease.acquire(SERIES, "a", 30_000, T0)
    await lease.release(SERIES, "b", T0)  # not b's to give up
    assert not await lease.acquire(SERIES, "b", 30_000, T0 + 1)
    await lease.release(SERIES, "a", T0 + 2)
    assert await lease.acquire(SERIES, "b", 30_000, T0 + 3)  # at once, no expiry to wait


async def test_file_lease_series_are_independent(tmp_path: Path) -> None:
    lease = FileLease(tmp_path)
    assert await lease.acquire(SERIES, "a", 30_000, T0)
    assert await lease.acquire("candles:binance:ETH/USDT:1m", "b", 30_000, T0)


class Switchable:
    """A FileLease that can be made unreachable (as Redis during an outage)."""

    def __init__(self, path: Path) -> None:
        self.inner = FileLease(path)
        self.down = False

    async def acquire(self, series: str, token: str, ttl_ms: int, now_ms: int) -> bool:
        if self.down:
            raise ConnectionError("redis: connection refused")
        return await self.inner.acquire(series, token, ttl_ms, now_ms)

    async def release(self, series: str, token: str, now_ms: int) -> None:
        if self.down:
            raise ConnectionError("redis: connection refused")
        await self.inner.release(series, token, now_ms)


async def test_tenure_writes_only_before_its_local_deadline(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    a = Tenure(FileLease(tmp_path), "a", clock, 30_000)
    assert a.renew_every_s == 10.0 and a.margin_ms == 6_000
    assert not a.holds(SERIES)
    assert await a.refresh(SERIES)  # gained
    clock.advance(23.999)
    assert a.holds(SERIES)
    clock.advance(0.001)  # ttl - margin after the take: no longer safe, lease not yet expired
    assert not a.holds(SERIES)


async def test_tenure_renewal_is_not_a_gain_a_lapse_is(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    a = Tenure(FileLease(tmp_path), "a", clock, 30_000)
    assert await a.refresh(SERIES)
    clock.advance(10)
    assert not await a.refresh(SERIES)  # renewed while held: nobody else wrote meanwhile
    assert a.holds(SERIES)
    clock.advance(25)  # missed its renewals: the local deadline passed
    assert await a.refresh(SERIES)  # took it again: another may have written meanwhile


async def test_take_over_after_the_holder_stops_renewing(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    lease = FileLease(tmp_path)
    a, b = Tenure(lease, "a", clock, 30_000), Tenure(lease, "b", clock, 30_000)
    assert await a.refresh(SERIES) and not await b.refresh(SERIES)
    for _ in range(6):  # a renews every 10 s for a minute: b never gets in
        clock.advance(10)
        assert not await a.refresh(SERIES)
        assert not await b.refresh(SERIES)
        assert a.holds(SERIES) and not b.holds(SERIES)
    # a dies after its last renewal (T0 + 60 s): its lease runs until T0 + 90 s
    clock.advance(29.999)
    assert not await b.refresh(SERIES)
    clock.advance(0.001)
    assert await b.refresh(SERIES) and b.holds(SERIES)
    assert not a.holds(SERIES)  # a's own deadline (T0 + 84 s) passed before b took it
    assert not await a.refresh(SERIES) and not a.holds(SERIES)


async def test_an_unreachable_lease_stops_the_holder_at_its_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    lease = Switchable(tmp_path)
    a = Tenure(lease, "a", clock, 30_000)
    assert await a.refresh(SERIES)
    lease.down = True
    for _ in range(2):
        clock.advance(10)
        assert not await a.refresh(SERIES)  # never raises
    assert a.errors == 2 and a.holds(SERIES)  # T0 + 20 s < T0 + 24 s
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1  # once per outage
    clock.advance(4)
    assert not a.holds(SERIES)
    await a.release(SERIES)  # never raises either
    lease.down = False
    assert await a.refresh(SERIES)  # its own (expired) lease: taken again, a gain


def test_tenure_refuses_a_ttl_under_a_second(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1000 ms"):
        Tenure(FileLease(tmp_path), "a", ManualClock(0), 999)
