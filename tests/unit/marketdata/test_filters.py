"""Exchange filters: the shipped snapshot, refusal of unknown symbols, saving a refreshed
snapshot, and prices printed at the market's precision."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kubetrade.domain.models import MarketInfo
from kubetrade.marketdata.filters import (
    FilterSet,
    UnknownSymbol,
    fetch_filters,
    format_price,
    format_qty,
    load_best,
    load_filters,
    save_filters,
    snapshot_path,
)

COMMON = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT",
          "ADA/USDT", "SHIB/USDT", "PEPE/USDT", "LTC/USDT"]


def test_snapshot_is_dated_and_covers_the_common_pairs() -> None:
    f = load_filters()
    assert f.exchange == "binance" and f.as_of == "2024-09-21"
    for symbol in COMMON:
        m = f.market(symbol)
        assert m.price_step > 0 and m.qty_step > 0 and m.min_notional > 0
        assert m.symbol == symbol and f"{m.base}/{m.quote}" == symbol
    btc = f.market("BTC/USDT")
    assert (btc.price_step, btc.qty_step, btc.min_notional) == (
        Decimal("0.01"), Decimal("0.00001"), Decimal("5"))
    for tiny in ("SHIB/USDT", "PEPE/USDT"):
        assert f.market(tiny).price_step == Decimal("0.00000001")


def test_unknown_symbol_refused_never_defaulted() -> None:
    with pytest.raises(UnknownSymbol) as info:
        load_filters().market("FLOKI/USDT")
    msg = str(info.value)
    assert "'FLOKI/USDT'" in msg and "as of 2024-09-21" in msg and "does not guess" in msg


def test_bad_snapshot_entries_are_named(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    p.write_text("exchange: binance\nas_of: x\nsymbols:\n  BTC/USDT: {tick_size: '0', "
                 "step_size: '1', min_qty: '1', min_notional: '5'}\n")
    with pytest.raises(ValueError, match=r"BTC/USDT.tick_size: must be > 0"):
        load_filters(p)
    p.write_text("exchange: binance\nsymbols:\n  BTC/USDT: {tick_size: '0.01'}\n")
    with pytest.raises(ValueError, match="lacks"):
        load_filters(p)


class Markets:
    async def load_markets(self) -> dict[str, MarketInfo]:
        return {
            "NEW/USDT": MarketInfo("NEW/USDT", "NEW", "USDT", Decimal("0.0001"), Decimal("0.1"),
                                   Decimal("0.1"), Decimal("5"), Decimal("100000")),
            "BAD/USDT": MarketInfo("BAD/USDT", "BAD", "USDT", Decimal("0"), Decimal("0"),
                                   Decimal("0"), Decimal("0")),
        }


async def test_refreshed_snapshot_saved_and_preferred(tmp_path: Path) -> None:
    live = await fetch_filters(Markets(), "2026-11-30T19:00:00Z")
    assert list(live.markets) == ["NEW/USDT"]
    path = save_filters(live, snapshot_path(tmp_path))
    assert path == tmp_path / "markets" / "binance-spot-filters.yaml"
    best = load_best(tmp_path)
    assert best.as_of == "2026-11-30T19:00:00Z" and best.market("NEW/USDT") == live.market(
        "NEW/USDT")
    assert load_best(tmp_path / "elsewhere").origin.endswith("binance-spot-filters.yaml")
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_prices_and_quantities_at_market_precision() -> None:
    f = load_filters()
    shib, btc = f.market("SHIB/USDT"), f.market("BTC/USDT")
    assert format_price(Decimal("0.0000141342"), shib) == "0.00001413"
    assert format_qty(Decimal("70000000"), shib) == "70000000"
    assert format_price(Decimal("63201.054"), btc) == "63201.05"
    assert format_qty(Decimal("0.0012345"), btc) == "0.00123"
    assert isinstance(f, FilterSet)
