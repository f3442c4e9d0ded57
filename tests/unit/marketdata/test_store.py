"""The candle store: Parquet per exchange/symbol/timeframe, atomic and idempotent
appends by open time, list and CSV export."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kubetrade.domain.models import Candle
from kubetrade.marketdata import LoadOptions, frame_from_candles, load_candles
from kubetrade.marketdata.store import CandleStore, SeriesKey
from tests.marketdata import market_file

KEY = SeriesKey("binance", "BTC/USDT", "1m")


@pytest.fixture
def minutes() -> list[Candle]:
    return load_candles(market_file("binance-BTCUSDT-1m-2024-09-21.csv")).to_list()


def test_layout_and_round_trip(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    result = store.append(KEY, frame_from_candles(minutes[:100], "test"))
    assert (result.added, result.replaced, result.total) == (100, 0, 100)
    assert store.path(KEY) == tmp_path / "binance" / "BTC-USDT" / "1m.parquet"
    assert store.keys() == [KEY]
    assert store.load(KEY).to_list() == minutes[:100]
    assert store.last_ms(KEY) == minutes[99].ts_ms


def test_append_is_idempotent_by_open_time(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    store.append(KEY, frame_from_candles(minutes[:100], "a"))
    before = store.path(KEY).stat().st_mtime_ns
    again = store.append(KEY, frame_from_candles(minutes[50:100], "b"))
    assert (again.added, again.replaced, again.total) == (0, 0, 100)
    assert store.path(KEY).stat().st_mtime_ns == before  # nothing rewritten
    more = store.append(KEY, frame_from_candles(minutes[90:200], "c"))
    assert (more.added, more.replaced, more.total) == (100, 0, 200)
    assert store.load(KEY).to_list() == minutes[:200]


def test_newer_copy_of_a_candle_wins(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    last = minutes[9]
    forming = type(last)(last.ts_ms, last.open, last.open, last.open, last.open, Decimal("0.5"))
    store.append(KEY, frame_from_candles([*minutes[:9], forming], "forming"))
    result = store.append(KEY, frame_from_candles([last], "complete"))
    assert (result.added, result.replaced) == (0, 1)
    assert store.load(KEY)[-1] == last


def test_failed_write_leaves_the_old_file_whole(tmp_path: Path, minutes: list[Candle],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = CandleStore(tmp_path)
    store.append(KEY, frame_from_candles(minutes[:10], "a"))

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("kubetrade.marketdata.parquet.write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        store.append(KEY, frame_from_candles(minutes[10:20], "b"))
    monkeypatch.undo()
    assert store.load(KEY).to_list() == minutes[:10]
    leftovers = [p.name for p in store.path(KEY).parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_info_counts_gaps_and_range_filter(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    store.append(KEY, frame_from_candles(minutes[:10] + minutes[13:20], "a"))
    info = store.info(KEY)
    assert (info.count, info.gaps, info.missing_candles) == (17, 1, 3)
    assert (info.first_ms, info.last_ms) == (minutes[0].ts_ms, minutes[19].ts_ms)
    part = store.load(KEY, since_ms=minutes[5].ts_ms, until_ms=minutes[15].ts_ms)
    assert [c.ts_ms for c in part] == [c.ts_ms for c in minutes[5:10] + minutes[13:16]]
    with pytest.raises(FileNotFoundError, match="data download"):
        store.load(SeriesKey("binance", "ETH/USDT", "1m"))


def test_export_csv_reads_back_through_the_loader(tmp_path: Path, minutes: list[Candle]) -> None:
    store = CandleStore(tmp_path)
    store.append(KEY, frame_from_candles(minutes[:50], "a"))
    data = store.export_csv(KEY)
    assert data is not None
    assert data.splitlines()[0] == b"timestamp_ms,open,high,low,close,volume"
    out = tmp_path / "out.csv"
    store.export_csv(KEY, out)
    assert load_candles(out, LoadOptions(timeframe="1m")).to_list() == minutes[:50]


def test_bad_symbol_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        CandleStore(tmp_path).path(SeriesKey("binance", "BTCUSDT", "1m"))
    with pytest.raises(ValueError, match="not a candle interval"):
        CandleStore(tmp_path).path(SeriesKey("binance", "BTC/USDT", "7m"))


def test_replay_from_store_resamples_a_finer_series(tmp_path: Path,
                                                     minutes: list[Candle]) -> None:
    from kubetrade.marketdata.loader import LoadOptions as Opts
    from kubetrade.marketdata.replay_input import StoreRange, replay_candles

    store = CandleStore(tmp_path)
    store.append(KEY, frame_from_candles(minutes[:180], "a"))
    rng = StoreRange(datadir=tmp_path)
    with pytest.raises(ValueError, match="no stored candles for binance BTC/USDT 1h"):
        replay_candles(None, rng, "BTC/USDT", "1h")
    hourly = replay_candles(None, rng, "BTC/USDT", "1h", Opts(resample=True))
    assert len(hourly) == 3 and hourly.report.resampled_from == "1m"
    assert hourly[0].open == minutes[0].open and hourly[2].close == minutes[179].close
