"""Loading and validating candles does not import pandas: pyarrow converts a Python value
through its pandas shim, which would add ~0.3 s to every `kubetrade validate`."""

from __future__ import annotations

import subprocess
import sys

from tests.marketdata import market_file


def test_loading_candles_leaves_pandas_unimported() -> None:
    code = (
        "import sys\n"
        "from kubetrade.marketdata.loader import LoadOptions, load_candles\n"
        f"frame = load_candles({str(market_file('binance-BTCUSDT-1m-2024-09-21.csv'))!r},"
        " LoadOptions(timeframe='1m'))\n"
        "assert len(frame) == 1440, len(frame)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
