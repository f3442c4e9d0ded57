"""Helpers of the recording tests: a candle store that notes who appended what (no
candle written twice: each open time appended once across every recorder of a series)
and several recorders consuming the same candles."""

from __future__ import annotations

from pathlib import Path

from kubetrade.domain.models import Candle
from kubetrade.marketdata.frame import CandleFrame
from kubetrade.marketdata.recording import CandleRecorder
from kubetrade.marketdata.store import AppendResult, CandleStore, SeriesKey


class SpyStore(CandleStore):
    """The real store at ``root``; each append adds ``(name, open ms)`` to ``log``."""

    def __init__(self, root: Path, name: str, log: list[tuple[str, int]]) -> None:
        super().__init__(root)
        self.name, self.log = name, log

    def append(self, key: SeriesKey, frame: CandleFrame) -> AppendResult:
        self.log.extend((self.name, ts) for ts in frame.table.column("timestamp_ms").to_pylist())
        return super().append(key, frame)


def feed(candles: list[Candle], *recorders: CandleRecorder) -> None:
    """Every recorder consumes ``candles`` of BTC/USDT (runners on one symbol)."""
    for c in candles:
        for r in recorders:
            r.record("BTC/USDT", c)
