"""Real recorded candles as Candle objects and as float arrays, for the rules tests."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from kubetrade.domain.models import Candle
from kubetrade.exchange.replay import load_candles
from tests.marketdata import market_file

FILES = (
    "binance-BTCUSDT-1m-2024-09-21.csv",  # ~63,000 USDT
    "freqtrade-ETHBTC-5m-2018-01.csv",  # ~0.09 BTC
    "freqtrade-XRPETH-1m-2019-10.csv",  # ~0.0014 ETH: TA-Lib's 1e-8 epsilons would bite
)


@cache
def candles(name: str) -> list[Candle]:
    return load_candles(market_file(name))


def arrays(name: str) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    """open, high, low, close, volume as float arrays."""
    cs = candles(name)
    return [np.array([float(getattr(c, f)) for c in cs])
            for f in ("open", "high", "low", "close", "volume")]
