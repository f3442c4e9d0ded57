"""Fake Binance spot server for tests: see server.py. ``FakeBinance().start()`` or the
``fake_binance`` fixture; ``python -m tests.fakes.binance --port N`` for other processes."""

from .server import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinance, Fault
from .state import ApiError, ExchangeState, FakeOrder, FakeTrade, MarketSpec

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "ApiError",
    "ExchangeState",
    "FakeBinance",
    "FakeOrder",
    "FakeTrade",
    "Fault",
    "MarketSpec",
]
