"""Helpers shared by the exchange integration tests: a real ccxt async Binance client
pointed at the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import ccxt.async_support as ccxt
import pytest

from tests.fakes.binance import FakeBinance


def ccxt_client(fake: FakeBinance, *, api_key: str | None = None, secret: str | None = None,
                timeout_ms: int = 3000) -> ccxt.binance:
    ex = ccxt.binance({
        "apiKey": fake.api_key if api_key is None else api_key,
        "secret": fake.secret if secret is None else secret,
        "timeout": timeout_ms,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False, "defaultType": "spot"},
    })
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str):
            ex.urls["api"][name] = fake.url + "/" + url.split("/", 3)[3]
    return ex


@pytest.fixture
async def raw_ccxt(fake_binance: FakeBinance) -> AsyncIterator[ccxt.binance]:
    ex = ccxt_client(fake_binance)
    try:
        yield ex
    finally:
        await ex.close()
