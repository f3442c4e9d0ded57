"""`kubetrade data`: candle history into the store and out of it.

    kubetrade data download --symbols BTC/USDT,ETH/USDT --timeframes 1m,1h --since 2024-01-01
    kubetrade data download --markets                 # refresh the exchange filters snapshot
    kubetrade data list
    kubetrade data export --symbol BTC/USDT --timeframe 1m --format csv [--output FILE]

The store is ``--datadir`` (default ``data/candles``, env KUBETRADE_DATADIR). Download
talks to Binance's public market data (no keys) through the ResilientExchange (request
weights, Retry-After, retries); KUBETRADE_EXCHANGE_URL points it elsewhere (the test
fake). Exit 0 done, 1 exchange failure, 2 bad input or a candle page refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data", help="download, list and export stored candle history",
        description="Candle history: download into the store (Parquet per exchange/symbol/"
        "timeframe under --datadir), list what is stored, export it as CSV.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--datadir", default=os.environ.get("KUBETRADE_DATADIR", "data/candles"),
                        help="the candle store (default: $KUBETRADE_DATADIR or data/candles)")
    sub = p.add_subparsers(dest="data_command", metavar="<download|list|export>")
    d = sub.add_parser("download", parents=[common],
                       help="fetch candle history into the store (resumable)")
    d.add_argument("--symbols", default="", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    d.add_argument("--timeframes", default="1m", help="comma-separated, e.g. 1m,1h (default 1m)")
    d.add_argument("--since", help="first open time: YYYY-MM-DD, ISO 8601 (UTC) or epoch ms")
    d.add_argument("--until", help="last open time (default: the last closed candle)")
    d.add_argument("--exchange", default="binance", choices=["binance"])
    d.add_argument("--testnet", action="store_true",
                   help="Binance spot testnet instead of the real market data")
    d.add_argument("--markets", action="store_true",
                   help="also refresh the exchange filters (tick, lot, min notional) snapshot "
                   "into <datadir>/markets/")
    d.add_argument("--progress", choices=["auto", "bar", "json"], default="auto",
                   help="progress bar on a terminal, JSON lines otherwise (default auto)")
    d.set_defaults(func=run_download)
    ls = sub.add_parser("list", parents=[common],
                        help="stored series: symbol, timeframe, first, last, count, gaps")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ls.set_defaults(func=run_list)
    e = sub.add_parser("export", parents=[common], help="write a stored series as CSV")
    e.add_argument("--symbol", required=True)
    e.add_argument("--timeframe", required=True)
    e.add_argument("--exchange", default="binance")
    e.add_argument("--format", default="csv", choices=["csv"])
    e.add_argument("--output", "-o", help="file (default: stdout)")
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda _a: (p.print_help(sys.stderr), EXIT_USAGE)[1])


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def run_download(args: argparse.Namespace) -> int:
    from kubetrade.marketdata.timeframes import parse_time, timeframe_ms

    symbols, timeframes = _split(args.symbols), _split(args.timeframes)
    try:
        for tf in timeframes:
            timeframe_ms(tf)
        if symbols and not args.since:
            raise ValueError("--since is required with --symbols (e.g. --since 2024-01-01)")
        if not symbols and not args.markets:
            raise ValueError("nothing to do: give --symbols (and --since), or --markets")
        since = parse_time(args.since) if args.since else 0
        until = parse_time(args.until) if args.until else None
    except ValueError as e:
        print(f"kubetrade data download: {e}", file=sys.stderr)
        return EXIT_USAGE
    from kubetrade.logs import configure_logging

    # stdout carries the JSON progress lines; what the exchange client logs on the way
    # (retries, the circuit breaker) goes to stderr as JSON too, not as bare text
    configure_logging(stream=sys.stderr)
    return asyncio.run(_download(args, symbols, timeframes, since, until))


def _progress(mode: str) -> Any:
    from kubetrade.marketdata.progress import JsonLinesProgress, RichProgress

    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return RichProgress()
    return JsonLinesProgress(sys.stdout)


def _exchange(args: argparse.Namespace, clock: Any) -> Any:
    from kubetrade.exchange.binance import BinanceExchange
    from kubetrade.exchange.resilient import ResilientExchange

    inner = BinanceExchange(testnet=args.testnet, clock=clock,
                            base_url=os.environ.get("KUBETRADE_EXCHANGE_URL") or None)
    return ResilientExchange(inner, clock)


async def _download(args: argparse.Namespace, symbols: list[str], timeframes: list[str],
                    since: int, until: int | None) -> int:
    from contextlib import nullcontext

    from kubetrade.domain.clock import SystemClock
    from kubetrade.exchange.base import BadSymbol, ExchangeError
    from kubetrade.marketdata import CandleDataError
    from kubetrade.marketdata.download import download
    from kubetrade.marketdata.store import CandleStore, SeriesKey

    clock = SystemClock()
    exchange = _exchange(args, clock)
    store = CandleStore(args.datadir)
    progress = _progress(args.progress)
    try:
        with progress if hasattr(progress, "__enter__") else nullcontext():
            if args.markets:
                await _refresh_markets(exchange, args.datadir, clock)
            for symbol in symbols:
                for tf in timeframes:
                    key = SeriesKey(args.exchange, symbol, tf)
                    await download(exchange, store, key, since, until, clock, progress)
    except CandleDataError as e:
        print(f"kubetrade data download: refused: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BadSymbol as e:
        print(f"kubetrade data download: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ExchangeError as e:
        print(f"kubetrade data download: exchange failed: {e} (run again to resume)",
              file=sys.stderr)
        return EXIT_ERROR
    finally:
        await exchange.close()
    return EXIT_OK


async def _refresh_markets(exchange: Any, datadir: str, clock: Any) -> None:
    from kubetrade.marketdata.filters import fetch_filters, save_filters, snapshot_path
    from kubetrade.marketdata.timeframes import iso_ms

    filters = await fetch_filters(exchange, iso_ms(clock.now_ms()))
    path = save_filters(filters, snapshot_path(datadir))
    print(json.dumps({"event": "markets.saved", "path": str(path),
                      "symbols": len(filters.markets)}), file=sys.stderr)


def run_list(args: argparse.Namespace) -> int:
    from kubetrade.marketdata.store import CandleStore
    from kubetrade.marketdata.timeframes import iso_ms

    store = CandleStore(args.datadir)
    rows = [store.info(k) for k in store.keys()]
    if args.json:
        for r in rows:
            print(json.dumps({
                "exchange": r.key.exchange, "symbol": r.key.symbol,
                "timeframe": r.key.timeframe, "count": r.count, "gaps": r.gaps,
                "missing": r.missing_candles,
                "first": iso_ms(r.first_ms) if r.first_ms is not None else None,
                "last": iso_ms(r.last_ms) if r.last_ms is not None else None}))
        return EXIT_OK
    if not rows:
        print(f"no candles stored under {args.datadir} (kubetrade data download fetches them)")
        return EXIT_OK
    head = f"{'EXCHANGE':<9} {'SYMBOL':<12} {'TF':<4} {'FIRST':<21} {'LAST':<21} " \
           f"{'COUNT':>9} {'GAPS':>6}"
    print(head)
    for r in rows:
        first = iso_ms(r.first_ms) if r.first_ms is not None else "-"
        last = iso_ms(r.last_ms) if r.last_ms is not None else "-"
        print(f"{r.key.exchange:<9} {r.key.symbol:<12} {r.key.timeframe:<4} {first:<21} "
              f"{last:<21} {r.count:>9} {r.gaps:>6}")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kubetrade.marketdata.store import CandleStore, SeriesKey

    store = CandleStore(args.datadir)
    key = SeriesKey(args.exchange, args.symbol, args.timeframe)
    try:
        data = store.export_csv(key, Path(args.output) if args.output else None)
    except (FileNotFoundError, ValueError) as e:
        print(f"kubetrade data export: {e}", file=sys.stderr)
        return EXIT_USAGE
    if data is not None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    """The candle-loading flags of a replay (``kubetrade validate --replay``)."""
    p.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], default=None,
                   help="with --replay FILE: the unit of its timestamps when not milliseconds "
                   "(refused otherwise)")
    p.add_argument("--resample", action="store_true",
                   help="with --replay: build the Strategy's timeframe from finer candles "
                   "(first open, max high, min low, last close, summed volume) instead of "
                   "refusing them")
    p.add_argument("--duplicates", choices=["refuse", "last"], default="refuse",
                   help="two different candles for one time: refuse the file (default) or "
                   "keep the later row")
    p.add_argument("--since", default=None,
                   help="with --replay store: first candle (YYYY-MM-DD, ISO 8601 UTC, or ms)")
    p.add_argument("--until", default=None, help="with --replay store: last candle")
    p.add_argument("--datadir", default=os.environ.get("KUBETRADE_DATADIR", "data/candles"),
                   help="the candle store (--replay store) and its refreshed exchange filters "
                   "(markets/; default: $KUBETRADE_DATADIR or data/candles)")


def replay_settings(args: argparse.Namespace, from_store: bool) -> tuple[Any, Any]:
    """(LoadOptions, StoreRange or None) from the flags of ``add_replay_arguments``;
    ValueError for a bad time."""
    from pathlib import Path

    from kubetrade.marketdata import LoadOptions
    from kubetrade.marketdata.replay_input import StoreRange
    from kubetrade.marketdata.timeframes import parse_time

    options = LoadOptions(time_unit=getattr(args, "time_unit", None),
                          resample=bool(getattr(args, "resample", False)),
                          duplicates=getattr(args, "duplicates", "refuse"))
    if not from_store:
        return options, None
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    return options, StoreRange(
        datadir=Path(getattr(args, "datadir", "data/candles")),
        since_ms=parse_time(since) if since else None,
        until_ms=parse_time(until) if until else None)
