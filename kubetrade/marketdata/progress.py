"""Progress of a download: a rich progress bar on a terminal, JSON lines otherwise
(logs of a Job, a pipe, CI). Both take the same three calls."""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol, TextIO

from kubetrade.marketdata.timeframes import iso_ms


class Progress(Protocol):
    """What a download reports: ``start`` a series (expected candles, may be 0 when
    unknown), ``advance`` after each stored page, ``finish`` with the totals."""

    def start(self, label: str, expected: int) -> None: ...

    def advance(self, label: str, candles: int, last_ms: int) -> None: ...

    def finish(self, label: str, summary: dict[str, Any]) -> None: ...


class JsonLinesProgress:
    """One JSON object per line: ``{"event": "download.start"|"download.page"|
    "download.done", "series": ..., ...}``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._done: dict[str, int] = {}

    def _emit(self, event: str, label: str, **data: Any) -> None:
        self.stream.write(json.dumps({"event": event, "series": label, **data}) + "\n")
        self.stream.flush()

    def start(self, label: str, expected: int) -> None:
        self._done[label] = 0
        self._emit("download.start", label, expected=expected)

    def advance(self, label: str, candles: int, last_ms: int) -> None:
        self._done[label] = self._done.get(label, 0) + candles
        self._emit("download.page", label, candles=candles, total=self._done[label],
                   last=iso_ms(last_ms))

    def finish(self, label: str, summary: dict[str, Any]) -> None:
        self._emit("download.done", label, **summary)


class RichProgress:
    """A rich progress bar per series (for a terminal); use as a context manager."""

    def __init__(self) -> None:
        # rich is imported only when a terminal shows the bar (a pod's log never does)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar

        self._bar = RichBar(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, label: str, expected: int) -> None:
        self._tasks[label] = self._bar.add_task(label, total=expected or None)

    def advance(self, label: str, candles: int, last_ms: int) -> None:
        task = self._tasks[label]
        self._bar.update(task, advance=candles, description=f"{label} {iso_ms(last_ms)}")

    def finish(self, label: str, summary: dict[str, Any]) -> None:
        task = self._tasks[label]
        self._bar.update(task, total=self._bar.tasks[task].completed,
                         description=f"{label} done ({summary.get('added', 0)} new)")
