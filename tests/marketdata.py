"""Where tests find the real recorded candles.

The files are vendored in tests/data/market (copied from the project's shared data,
provenance in its SOURCES.md), so a fresh clone anywhere has them; KUBETRADE_SHARED_DATA
points elsewhere when set.
"""

from __future__ import annotations

import os
from pathlib import Path

VENDORED = Path(__file__).resolve().parent / "data" / "market"


def market_data_dir() -> Path:
    env = os.environ.get("KUBETRADE_SHARED_DATA")
    return Path(env) if env else VENDORED


def market_file(name: str) -> Path:
    path = market_data_dir() / name
    assert path.is_file(), f"real candle file missing: {path} (set KUBETRADE_SHARED_DATA)"
    return path
