"""Exchange filters per symbol: tick size, lot step, minimum quantity and notional.

Offline, a snapshot shipped with the package (data/binance-spot-filters.yaml, dated by
its ``as_of``) or one refreshed into the data directory; live, the exchange's own
``load_markets``. A symbol without known filters is refused with ``UnknownSymbol``,
never given a default tick: a 0.01 tick on a 0.0000141 price rounds it to zero.
Also the formatting of prices and quantities at a market's precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import yaml

from kubetrade.domain.models import MarketInfo
from kubetrade.marketdata.atomic import replace_atomically

SNAPSHOT = Path(__file__).parent / "data" / "binance-spot-filters.yaml"


class UnknownSymbol(ValueError):
    """No filters are known for a symbol; the message says where they were looked for."""


class MarketsSource(Protocol):
    """Anything with ccxt-style ``load_markets`` (BinanceExchange, ResilientExchange)."""

    async def load_markets(self) -> dict[str, MarketInfo]: ...


@dataclass(frozen=True, slots=True)
class FilterSet:
    """Filters of one exchange: ``markets`` by symbol (``BTC/USDT``), ``as_of`` the date
    (or time) they describe, ``origin`` where they came from (a path or ``live``)."""

    exchange: str
    as_of: str
    origin: str
    markets: dict[str, MarketInfo]

    def market(self, symbol: str) -> MarketInfo:
        """The filters of ``symbol``; ``UnknownSymbol`` names the symbol and the source."""
        try:
            return self.markets[symbol]
        except KeyError:
            known = ", ".join(sorted(self.markets))
            raise UnknownSymbol(
                f"no {self.exchange} trading rules (tick size, lot step, min notional) known "
                f"for {symbol!r} in {self.origin} (as of {self.as_of}); known: {known}. "
                "Refresh them with `kubetrade data download --markets` or trade a listed "
                "symbol; kubetrade does not guess a tick size") from None


def _dec(value: Any, field: str, symbol: str, origin: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{origin}: {symbol}.{field}: not a number: {value!r}") from None
    if not out.is_finite() or out <= 0:
        raise ValueError(f"{origin}: {symbol}.{field}: must be > 0, got {value!r}")
    return out


def _market(symbol: str, row: dict[str, Any], origin: str) -> MarketInfo:
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise ValueError(f"{origin}: symbol must be BASE/QUOTE, got {symbol!r}")
    max_qty = row.get("max_qty")
    return MarketInfo(
        symbol=symbol, base=base, quote=quote,
        price_step=_dec(row["tick_size"], "tick_size", symbol, origin),
        qty_step=_dec(row["step_size"], "step_size", symbol, origin),
        min_qty=_dec(row["min_qty"], "min_qty", symbol, origin),
        min_notional=_dec(row["min_notional"], "min_notional", symbol, origin),
        max_qty=_dec(max_qty, "max_qty", symbol, origin) if max_qty is not None else None,
    )


def load_filters(path: str | Path | None = None) -> FilterSet:
    """A filter snapshot (YAML: ``exchange``, ``as_of``, ``symbols: {SYM: {tick_size,
    step_size, min_qty, min_notional[, max_qty]}}``); the shipped one by default.
    ValueError names the file and field of a bad entry."""
    p = Path(path) if path is not None else SNAPSHOT
    doc = yaml.safe_load(p.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("symbols"), dict):
        raise ValueError(f"{p}: expected a mapping with exchange, as_of and symbols")
    try:
        markets = {str(s): _market(str(s), dict(row), str(p)) for s, row in doc["symbols"].items()}
    except KeyError as e:
        raise ValueError(f"{p}: an entry lacks {e}") from None
    return FilterSet(str(doc.get("exchange", "binance")), str(doc.get("as_of", "unknown")),
                     str(p), markets)


def snapshot_path(datadir: str | Path, exchange: str = "binance") -> Path:
    """Where a refreshed snapshot lives in the data directory."""
    return Path(datadir) / "markets" / f"{exchange}-spot-filters.yaml"


def load_best(datadir: str | Path | None = None, exchange: str = "binance") -> FilterSet:
    """The refreshed snapshot in ``datadir`` if there is one, else the shipped one."""
    if datadir is not None:
        p = snapshot_path(datadir, exchange)
        if p.is_file():
            return load_filters(p)
    return load_filters()


async def fetch_filters(source: MarketsSource, as_of: str, exchange: str = "binance",
                        symbols: list[str] | None = None) -> FilterSet:
    """Live filters from ``source.load_markets()`` (only ``symbols`` when given;
    markets without a positive tick or step are skipped). ``as_of``: the time fetched."""
    markets = await source.load_markets()
    chosen = {s: m for s, m in markets.items()
              if (symbols is None or s in symbols) and m.price_step > 0 and m.qty_step > 0}
    return FilterSet(exchange, as_of, "live", chosen)


def save_filters(filters: FilterSet, path: str | Path) -> Path:
    """Write ``filters`` as a snapshot YAML, atomically (temp file, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = {s: _row(m) for s, m in sorted(filters.markets.items())}
    text = yaml.safe_dump({"exchange": filters.exchange, "as_of": filters.as_of,
                           "symbols": rows}, sort_keys=False)
    replace_atomically(p, lambda tmp: Path(tmp).write_text(text))
    return p


def _row(m: MarketInfo) -> dict[str, str]:
    row = {"tick_size": f"{m.price_step:f}", "step_size": f"{m.qty_step:f}",
           "min_qty": f"{m.min_qty:f}", "min_notional": f"{m.min_notional:f}"}
    if m.max_qty is not None:
        row["max_qty"] = f"{m.max_qty:f}"
    return row


def decimals(step: Decimal) -> int:
    """Decimal places of a tick or step: ``0.00000001`` -> 8, ``1`` -> 0, ``10`` -> 0."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def format_price(price: Decimal, market: MarketInfo) -> str:
    """``price`` with as many decimals as the market's tick (0.0000141 stays legible)."""
    return f"{price:.{decimals(market.price_step)}f}"


def format_qty(quantity: Decimal, market: MarketInfo) -> str:
    """``quantity`` with as many decimals as the market's lot step."""
    return f"{quantity:.{decimals(market.qty_step)}f}"
