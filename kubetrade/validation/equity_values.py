"""A replay's equity per candle, held in runs instead of one Decimal per candle.

A million Decimals hold ~110 MB. A fast replay's equity moves in two kinds of runs:
one value repeated (nothing held: the cash; or one candle through the engine), and the
one position held, where the equity of candle ``i`` is ``cash + quantity * close_i``
(``TradingEngine.on_held_candles`` computes exactly that). :class:`EquityValues` keeps
the runs, one float per point (``floats``, what the metrics read), and recomputes a
held point's Decimal when it is read, with the same Decimal operations on the same
close text (Arrow's cast of the close column to string, which the replay built its
Decimal closes from), so every value read is the one the engine computed.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from typing import overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CHUNK = 1024
"""Close texts cast at once around a single point read (reads are mostly in order)."""


def close_texts(closes: pa.ChunkedArray, rows: Sequence[int]) -> list[str]:
    """The text of ``closes`` at ``rows`` (Arrow's cast of the float to string)."""
    index = pa.Array.from_buffers(pa.int64(), len(rows),
                                  [None, pa.py_buffer(np.asarray(rows, np.int64))])
    return pc.cast(closes.take(index), pa.string()).to_pylist()  # type: ignore[no-any-return]


class EquityValues(Sequence[Decimal]):
    """Equity per point in runs (see the module docstring); reads as a sequence of
    Decimals. ``closes`` is the replayed frame's close column (float64, row i is the
    candle of point i)."""

    __slots__ = ("_chunk", "_closes", "_runs", "_starts", "floats")

    def __init__(self, closes: pa.ChunkedArray) -> None:
        self._closes = closes
        self._starts: list[int] = []
        # per run: (value, None) for one value repeated, (cash, quantity) when held
        self._runs: list[tuple[Decimal, Decimal | None]] = []
        self.floats = array("d")
        self._chunk: tuple[int, list[str]] = (-1, [])

    def add(self, value: Decimal, count: int = 1) -> None:
        """``count`` points of ``value``."""
        if count <= 0:
            return
        if not (self._runs and self._runs[-1][1] is None and self._runs[-1][0] is value):
            self._starts.append(len(self.floats))
            self._runs.append((value, None))
        if count == 1:  # a candle through the engine: most calls
            self.floats.append(float(value))
        else:
            self.floats.extend(repeat(float(value), count))

    def add_held(self, cash: Decimal, quantity: Decimal, values: Sequence[Decimal]) -> None:
        """Points of the one position held: ``values[k]`` is ``cash + quantity *
        close`` of the next candles (only their floats are kept)."""
        if not values:
            return
        self._starts.append(len(self.floats))
        self._runs.append((cash, quantity))
        self.floats.extend(map(float, values))

    def append(self, value: Decimal) -> None:
        self.add(value)

    def __len__(self) -> int:
        return len(self.floats)

    @overload
    def __getitem__(self, index: int) -> Decimal: ...

    @overload
    def __getitem__(self, index: slice) -> list[Decimal]: ...

    def __getitem__(self, index: int | slice) -> Decimal | list[Decimal]:
        n = len(self.floats)
        if isinstance(index, slice):
            return self.take(range(*index.indices(n)))
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("equity index out of range")
        value, quantity = self._runs[bisect_right(self._starts, i) - 1]
        if quantity is None:
            return value
        c, texts = self._chunk
        if c != i // _CHUNK:
            c = i // _CHUNK
            part = self._closes.slice(c * _CHUNK, _CHUNK)
            texts = pc.cast(part, pa.string()).to_pylist()
            self._chunk = (c, texts)
        return value + quantity * Decimal(texts[i - c * _CHUNK])

    def repeats(self, indices: np.ndarray) -> np.ndarray:
        """For ``indices`` in order: whether each one's value is certainly the
        previous index's (both in one run of one value)."""
        run = np.searchsorted(np.array(self._starts, np.int64), indices, side="right") - 1
        const = np.array([q is None for _, q in self._runs], bool)
        out = np.zeros(len(indices), bool)
        out[1:] = (run[1:] == run[:-1]) & const[run[1:]]
        return out

    def take(self, indices: Iterable[int]) -> list[Decimal]:
        """The values at ``indices`` (each in range), the held ones' closes cast at once."""
        rows = list(indices)
        out: list[Decimal] = [Decimal(0)] * len(rows)
        held: list[int] = []
        starts, runs = self._starts, self._runs
        for k, i in enumerate(rows):
            value, quantity = runs[bisect_right(starts, i) - 1]
            if quantity is None:
                out[k] = value
            else:
                held.append(k)
        if held:
            texts = close_texts(self._closes, [rows[k] for k in held])
            for k, text in zip(held, texts, strict=True):
                value, quantity = runs[bisect_right(starts, rows[k]) - 1]
                assert quantity is not None
                out[k] = value + quantity * Decimal(text)
        return out

    def __iter__(self) -> Iterator[Decimal]:
        ends = [*self._starts[1:], len(self.floats)]
        for start, end, (value, quantity) in zip(self._starts, ends, self._runs, strict=True):
            if quantity is None:
                yield from repeat(value, end - start)
            else:
                part = pc.cast(self._closes.slice(start, end - start), pa.string())
                for text in part.to_pylist():
                    yield value + quantity * Decimal(text)


__all__ = ["EquityValues", "close_texts"]
