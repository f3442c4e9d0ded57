"""Recording consumed candles into the store: batched, one writer per series among runners
sharing a lease, a take-over that fills what the stopped writer missed, failures that
never reach trading."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle
from kubetrade.marketdata import load_candles
from kubetrade.marketdata.recording import CandleRecorder, FileLease, RecordingSource
from kubetrade.marketdata.store import CandleStore, SeriesKey
from tests.marketdata import market_file

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


def test_one_writer_per_series_and_take_over(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    lease = FileLease(tmp_path)
    clock = ManualClock(minutes[0].ts_ms)
    a = CandleRecorder(store, "binance", "1m", "runner-a", clock, lease=lease, lease_ttl_s=600)
    b = CandleRecorder(store, "binance", "1m", "runner-b", clock, lease=lease, lease_ttl_s=600)
    for c in minutes[:30]:
        a.record("BTC/USDT", c)
        b.record("BTC/USDT", c)
    assert a.flush() == 30 and b.flush() == 0
    assert b.stats.not_holder == 1
    # runner-a stops; runner-b keeps consuming and takes over once a's lease expires
    for c in minutes[30:60]:
        b.record("BTC/USDT", c)
    clock.set(minutes[0].ts_ms + 601_000)
    assert b.flush() == 60  # its buffer since the start: a's share again, harmlessly
    assert store.load(KEY).to_list() == minutes[:60]


def test_a_failed_write_is_kept_for_the_next_flush(tmp_path: Path, minutes: list[Candle],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = CandleStore(tmp_path)
    rec = CandleRecorder(store, "binance", "1m", "r", ManualClock(0))
    for c in minutes[:10]:
        rec.record("BTC/USDT", c)

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr("kubetrade.marketdata.store.pq.write_table", broken)
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
