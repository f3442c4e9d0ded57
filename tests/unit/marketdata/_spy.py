"""A candle store that notes who appended what, for the recording tests (no candle
written twice: each open time appended once across every recorder of a series)."""

from __future__ import annotations

from pathlib import Path

from kubetrade.marketdata.frame import CandleFrame
from kubetrade.marketdata.store import AppendResult, CandleStore, SeriesKey


class SpyStore(CandleStore):
    """The real store at ``root``; each append adds ``(name, open ms)`` to ``log``."""

    def __init__(self, root: Path, name: str, log: list[tuple[str, int]]) -> None:
        super().__init__(root)
        self.name, self.log = name, log

    def append(self, key: SeriesKey, frame: CandleFrame) -> AppendResult:
        self.log.extend((self.name, ts) for ts in frame.table.column("timestamp_ms").to_pylist())
        return super().append(key, frame)
