"""Run the fake Binance server as its own process (for e2e tests that start runners as
subprocesses). Control it over HTTP: GET /_fake/state, POST /_fake/control {"op": ...}.

    python -m tests.fakes.binance --port 18080 [--api-key K --secret S]
        [--market-start-ms 1726876800000 --speed 60 | --live [--warmup-minutes 120]]
        [--balance USDT=10000]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from decimal import Decimal

from .server import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinance


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fakes.binance")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=DEFAULT_API_KEY)
    ap.add_argument("--secret", default=DEFAULT_SECRET)
    ap.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT")
    ap.add_argument("--market-start-ms", type=int, default=None,
                    help="run the market clock from this candle time")
    ap.add_argument("--speed", type=float, default=1.0, help="market seconds per wall second")
    ap.add_argument("--live", action="store_true",
                    help="serve the recorded candles shifted to the present (system clock)")
    ap.add_argument("--warmup-minutes", type=int, default=120,
                    help="with --live: minutes of history before now")
    ap.add_argument("--client-id-reuse", choices=["never", "after_close"], default="never")
    args = ap.parse_args(argv)
    balances = None
    if args.balance:
        balances = {}
        for item in args.balance:
            asset, _, amount = item.partition("=")
            balances[asset] = Decimal(amount)
    fake = FakeBinance(api_key=args.api_key, secret=args.secret, balances=balances,
                       host=args.host, port=args.port, client_id_reuse=args.client_id_reuse)
    fake.start()
    if args.live:
        fake.run_market_live(args.market_start_ms, args.warmup_minutes)
    elif args.market_start_ms is not None:
        fake.run_market_from(args.market_start_ms, args.speed)
    print(f"fake-binance listening on {fake.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
