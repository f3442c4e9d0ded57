"""What a replay reads: a candle file, or a range of the candle store, always through the
one loader with the Strategy's timeframe, and logged with its load report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kubetrade.marketdata.frame import CandleFrame
from kubetrade.marketdata.loader import LoadOptions, load_candles
from kubetrade.marketdata.store import DEFAULT_DATADIR, CandleStore, SeriesKey

log = logging.getLogger("kubetrade.marketdata")


@dataclass(frozen=True, slots=True)
class StoreRange:
    """``--replay store``: candles of the store in ``datadir`` with open time in
    [since, until] (ms; None = from the first / to the last stored). With ``--resample``
    and no series of the Strategy's timeframe, the finest stored one is resampled."""

    datadir: Path = DEFAULT_DATADIR
    exchange: str = "binance"
    since_ms: int | None = None
    until_ms: int | None = None


def replay_candles(path: Path | None, store: StoreRange | None, symbol: str, timeframe: str,
                   options: LoadOptions | None = None) -> CandleFrame:
    """Validated candles for a replay of ``symbol`` on ``timeframe``: from ``path``, or
    from ``store`` when given. ``options`` (time unit, resample, duplicates) get the
    Strategy's timeframe. Raises CandleDataError, or ValueError when nothing is stored
    for that range (both exit 2 in the CLI)."""
    base = options or LoadOptions()
    opts = LoadOptions(timeframe=timeframe, time_unit=base.time_unit, resample=base.resample,
                       duplicates=base.duplicates)
    if store is not None:
        key = SeriesKey(store.exchange, symbol, timeframe)
        candles = CandleStore(store.datadir)
        source = candles.finer_source(key) if base.resample and not candles.path(
            key).is_file() else None
        try:
            frame = candles.load(source or key, store.since_ms, store.until_ms,
                                 as_timeframe=timeframe)
        except FileNotFoundError as e:  # a usage error for the CLI (exit 2), not a crash
            raise ValueError(f"replay store: {e}") from None
    elif path is not None:
        frame = load_candles(path, opts)
    else:
        raise ValueError("replay: no candle file and no store range given")
    release_arrow_memory()
    log.info("candles loaded from %s: %s", frame.report.source, frame.report.summary(),
             extra={"data_quality": frame.report.to_dict()})
    return frame


def release_arrow_memory() -> None:
    """Hand back to the system what Arrow's pool kept after its arrays were freed: it
    keeps freed memory for Arrow alone (mimalloc), and what follows is Python objects.
    After a load (the parsed blocks, the checks' temporaries: about twice the table)
    1M candles peak ~70 MiB lower through the replay; after the replay the candles
    themselves (bench/validate.py)."""
    pa.default_memory_pool().release_unused()
