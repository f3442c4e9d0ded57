"""Small candle CSVs for the rule tests, built from real BTC/USDT minutes."""

from __future__ import annotations

from pathlib import Path

from tests.marketdata import market_file

HEADER = "timestamp_ms,open,high,low,close,volume"


def real_rows(n: int = 30) -> list[str]:
    """The first ``n`` data lines of the real 1m BTC/USDT recording."""
    lines = market_file("binance-BTCUSDT-1m-2024-09-21.csv").read_text().splitlines()
    return lines[1 : n + 1]


def write(tmp: Path, rows: list[str], name: str = "c.csv", header: str = HEADER) -> Path:
    path = tmp / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def replace_row(rows: list[str], index: int, values: str) -> list[str]:
    """``rows`` with row ``index`` (0-based, so CSV line index + 2) given new OHLCV
    values after its own timestamp."""
    ts = rows[index].split(",")[0]
    out = list(rows)
    out[index] = f"{ts},{values}"
    return out
