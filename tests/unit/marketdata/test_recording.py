"""Recording consumed candles into the store: batched, one writer per series among runners
sharing a lease (fake clock), a take-over that writes exactly what the stopped writer
missed, failures that never reach trading, replays never recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle
from kubetrade.marketdata import load_candles
from kubetrade.marketdata.recording import CandleRecorder, RecordingSource
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.marketdata.writer_lease import FileLease
from kubetrade.runner.assembly import RunnerEnv, build_market
from kubetrade.runner.market import ReplaySource, recorder_of
from kubetrade.runner.spec import RunnerSpec
from tests.marketdata import market_file
from tests.unit.marketdata._spy import SpyStore, feed
from tests.unit.marketdata.test_writer_lease import Switchable

KEY = SeriesKey("binance", "BTC/USDT", "1m")


@pytest.fixture
def minutes() -> list[Candle]:
    return load_candles(market_file("binance-BTCUSDT-1m-2024-09-21.csv")).to_list()[:120]


def test_batched_writes_and_stats(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    clock = ManualClock(minutes[-1].ts_ms + 60_000)
    rec = CandleRecorder(store, "binance", "1m", "runner-a", clock, flush_every=50)
    due = [rec.record("BTC/USDT", c) for c in minutes[:60]]
    assert due.index(True) == 49 and not store.keys()
    assert rec.flush() == 60
    assert store.load(KEY).to_list() == minutes[:60]
    assert rec.stats.recorded_total == {"BTC/USDT": 60}
    assert rec.stats.last_candle_ms["BTC/USDT"] == minutes[59].ts_ms
    assert rec.last_candle_age_s("BTC/USDT") == 60 * 60.0  # closed an hour before "now"


def _pair(tmp_path: Path, clock: ManualClock,
          log: list[tuple[str, int]]) -> tuple[CandleRecorder, CandleRecorder]:
    lease = FileLease(tmp_path)
    return tuple(  # type: ignore[return-value]
        CandleRecorder(SpyStore(tmp_path, name, log), "binance", "1m", name, clock,
                       lease=lease, lease_ttl_s=30)
        for name in ("runner-a", "runner-b"))


async def test_one_writer_per_series_and_take_over(tmp_path: Path, minutes: list[Candle]) -> None:
    clock = ManualClock(minutes[0].ts_ms)
    log: list[tuple[str, int]] = []
    a, b = _pair(tmp_path, clock, log)
    feed(minutes[:30], a, b)
    await a.refresh()
    await b.refresh()
    assert a.stats.leader == {"BTC/USDT": True} and b.stats.leader == {"BTC/USDT": False}
    assert a.flush() == 30 and b.flush() == 0
    assert b.stats.not_holder == 1
    # runner-a dies (no renewal, no release); runner-b keeps consuming and takes over once
    # a's lease expired
    for c in minutes[30:60]:
        b.record("BTC/USDT", c)
    clock.advance(29.999)
    await b.refresh()
    assert b.flush() == 0 and b.stats.leader == {"BTC/USDT": False}
    clock.advance(0.001)
    await b.refresh()
    assert b.stats.leader == {"BTC/USDT": True}
    assert b.flush() == 30  # only what a did not write: a's 30 are in the store already
    assert store_candles(tmp_path) == minutes[:60]  # no gap
    times = [ts for _, ts in log]
    assert sorted(times) == [c.ts_ms for c in minutes[:60]]  # no candle written twice
    assert {ts for who, ts in log if who == "runner-b"} == {c.ts_ms for c in minutes[30:60]}
    assert a.stats.recorded_total == {"BTC/USDT": 30} == b.stats.recorded_total
    # a comes back to life: its renewal is refused and it writes nothing
    a.record("BTC/USDT", minutes[60])
    await a.refresh()
    assert a.stats.leader == {"BTC/USDT": False} and a.flush() == 0


async def test_a_holder_that_stops_gives_the_series_up_at_once(
    tmp_path: Path, minutes: list[Candle]
) -> None:
    clock = ManualClock(minutes[0].ts_ms)
    log: list[tuple[str, int]] = []
    a, b = _pair(tmp_path, clock, log)
    feed(minutes[:20], a, b)
    await a.refresh()
    await b.refresh()
    assert a.flush() == 20 and b.flush() == 0
    await a.release()
    assert a.stats.leader == {"BTC/USDT": False}
    await b.refresh()  # no expiry to wait for
    assert b.stats.leader == {"BTC/USDT": True} and b.flush() == 0  # nothing new yet
    b.record("BTC/USDT", minutes[20])
    assert b.flush() == 1
    assert sorted(ts for _, ts in log) == [c.ts_ms for c in minutes[:21]]


async def test_a_holder_cut_from_its_lease_stops_writing(
    tmp_path: Path, minutes: list[Candle]
) -> None:
    clock = ManualClock(minutes[0].ts_ms)
    lease = Switchable(tmp_path)
    rec = CandleRecorder(CandleStore(tmp_path), "binance", "1m", "r", clock, lease=lease,
                         lease_ttl_s=30)
    rec.record("BTC/USDT", minutes[0])
    await rec.refresh()
    lease.down = True
    clock.advance(10)
    await rec.refresh()  # unreachable: still safe until 24 s after the take
    assert rec.flush() == 1
    rec.record("BTC/USDT", minutes[1])
    clock.advance(14)
    await rec.refresh()
    assert rec.stats.leader == {"BTC/USDT": False} and rec.flush() == 0
    lease.down = False
    await rec.refresh()
    assert rec.flush() == 1 and store_candles(tmp_path) == minutes[:2]


def store_candles(root: Path) -> list[Candle]:
    return CandleStore(root).load(KEY).to_list()


def test_a_failed_write_is_kept_for_the_next_flush(tmp_path: Path, minutes: list[Candle],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = CandleStore(tmp_path)
    rec = CandleRecorder(store, "binance", "1m", "r", ManualClock(0))
    for c in minutes[:10]:
        rec.record("BTC/USDT", c)

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr("kubetrade.marketdata.parquet.write_table", broken)
    assert rec.flush() == 0 and rec.stats.failures == 1
    monkeypatch.undo()
    assert rec.flush() == 10
    assert store.load(KEY).to_list() == minutes[:10]


class Stream:
    kind = "exchange"

    def __init__(self, candles: list[Candle]) -> None:
        self.items = candles

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        for c in self.items:
            yield "BTC/USDT", c


async def test_recording_source_passes_every_candle_on_and_stores_it(
    tmp_path: Path, minutes: list[Candle]
) -> None:
    store = CandleStore(tmp_path)
    rec = CandleRecorder(store, "binance", "1m", "r", ManualClock(0), flush_every=25)
    source = RecordingSource(Stream(minutes), rec)
    seen = [c async for _, c in source.candles({})]
    assert seen == minutes
    assert store.load(KEY).to_list() == minutes
    assert source.describe()["recording"] == str(tmp_path) and source.kind == "exchange"


async def test_the_recording_source_gives_its_lease_up_when_the_stream_ends(
    tmp_path: Path, minutes: list[Candle]
) -> None:
    clock = ManualClock(minutes[0].ts_ms)
    lease = FileLease(tmp_path)
    rec = CandleRecorder(CandleStore(tmp_path), "binance", "1m", "r", clock, lease=lease,
                         flush_every=25)
    source = RecordingSource(Stream(minutes[:60]), rec)
    assert source.describe()["writer_lease"] == "FileLease"
    seen = [c async for _, c in source.candles({})]
    assert seen == minutes[:60] and store_candles(tmp_path) == minutes[:60]
    assert rec.stats.leader == {"BTC/USDT": False}
    assert await lease.acquire("candles:binance:BTC/USDT:1m", "other", 30_000, clock.now_ms())


def test_replayed_candles_are_never_recorded(tmp_path: Path, minutes: list[Candle]) -> None:
    # a replay's candles come from a file or the store, and kubetrade local shifts each
    # lap forward in time: recorded, they would be invented candles under binance's name
    rec = CandleRecorder(CandleStore(tmp_path), "binance", "1m", "r", ManualClock(0))
    replay = ReplaySource({"BTC/USDT": minutes}, ManualClock(0), 0)
    with pytest.raises(ValueError, match="only exchange candles are recorded"):
        RecordingSource(replay, rec)


def test_a_runner_replaying_a_csv_records_nothing(tmp_path: Path) -> None:
    csv = market_file("binance-BTCUSDT-1m-2024-09-21.csv")
    spec = RunnerSpec(name="btc-sma", algorithm="sma-crossover", parameters={},
                      symbols=["BTC/USDT"], timeframe="1m")
    env = RunnerEnv(market_data=f"replay:{csv}", candle_dir=str(tmp_path / "candles"))
    market = build_market(spec, env, ManualClock(0), None)
    assert isinstance(market, ReplaySource) and recorder_of(market) is None
