"""Parquet files in and out, with ``pyarrow.parquet`` imported only when one is used.

A replay of a CSV file never touches Parquet, and ``pyarrow.parquet`` (with the
filesystem layer it pulls in) adds ~9 MiB to every process that imports it: measured
with ``ru_maxrss`` after ``import pyarrow.compute`` (61 MiB) and then it (70 MiB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa


def read_table(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """``pyarrow.parquet.read_table(path, columns=columns)``: the file's table (or those
    columns); OSError / ArrowInvalid as pyarrow raises them."""
    import pyarrow.parquet as pq  # only when used: see the module doc

    return pq.read_table(path, columns=list(columns) if columns is not None else None)


def write_table(table: pa.Table, path: Path | str, **options: Any) -> None:
    """``pyarrow.parquet.write_table(table, path, **options)``."""
    import pyarrow.parquet as pq  # only when used: see the module doc

    pq.write_table(table, path, **options)


__all__ = ["read_table", "write_table"]
