"""The assembly of ``kubetrade local``: the whole system in one process.

Helpers of the ``local`` subcommand (:mod:`kubetrade.cli.local`), kept apart from the
subcommand modules (the leading underscore keeps :func:`kubetrade.cli.build_parser` from
taking this package for a subcommand). Only ``cli`` may import runner, API and notifier
together, which this assembly does.

- :mod:`.embedded_redis` — the Redis the process uses (embedded or ``REDIS_URL``), on a
  bounded connection pool.
- :mod:`.seed` — the Strategy/RiskPolicy files of ``--strategies`` into desired state.
- :mod:`.market` — live Binance market data or the paced replay of bundled candles.
- :mod:`.system` — runners, notifier and API started together and stopped together.
- :mod:`.api_thread` — the API on its own thread and event loop, its desired state (the
  kill switch) run on the runners' loop.
- :mod:`.stopping` — SIGINT/SIGTERM: no new candle at once, a bounded exit.
- :mod:`.latency` — the runners' decision latency per candle (candle due -> done).
"""
