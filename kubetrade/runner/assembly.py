"""Assembling a runner from a Strategy manifest and the environment.

``create_runner`` makes the parts (exchange client, paper broker, market data, clocks,
limits) from the manifest and ``RunnerEnv``; ``run_runner`` restores the runner from
them (``Runner.restore``), applies the emergency and desired state in force, and trades.

Shared by ``kubetrade runner`` (one strategy, a pod or a terminal) and ``kubetrade
local`` (every strategy of a directory in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.models import Candle
from kubetrade.domain.preflight import client_throttle_enabled
from kubetrade.domain.timeframes import timeframe_ms
from kubetrade.exchange.base import ExchangeClient
from kubetrade.exchange.paper import PaperBroker, PaperExchange, default_market
from kubetrade.exchange.ratelimit import RateBudget, budget_plan
from kubetrade.exchange.testnet import testnet_setting
from kubetrade.logs import get_logger, redactor
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.emergency import read_redis_emergency
from kubetrade.runner.market import MarketSource, ReplaySource, load_replay
from kubetrade.runner.spec import limits_from_manifest
from kubetrade.runner.watch import apply_risk_manifest, apply_strategy_manifest, background_tasks
from kubetrade.state.budgets import RedisBudget
from kubetrade.state.client import Redis
from kubetrade.state.desired import DesiredState
from kubetrade.state.keys import Keys
from kubetrade.state.leases import RedisLease

DEFAULT_SECRETS_DIR = "/var/run/secrets/kubetrade/exchange"
PAPER_FILLS_KEPT = 2_000

log = get_logger("kubetrade.runner")


def manifest_of(model: Any) -> dict[str, Any]:
    """A resource model as the manifest dict (CR spelling) that desired state stores."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def _metrics_port(text: str) -> int | None:
    """``METRICS_PORT`` as a TCP port (0: no metrics server, None); ValueError naming
    the variable otherwise."""
    port = int(text) if text.strip().isdigit() else -1
    if not 0 <= port <= 65535:
        raise ValueError(f"METRICS_PORT={text!r} is not a TCP port (1-65535, or 0 = off)")
    return port or None


@dataclass
class RunnerEnv:
    """The runner's environment (names in the RUNNER contract)."""

    redis_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    testnet: bool | None = None  # None: the Strategy's spec.exchange.testnet decides
    exchange_url: str | None = None
    market_data: str = "exchange"  # "exchange" | "replay:<csv>" (one file per symbol: a;b)
    replay_interval: float = 1.0
    metrics_port: int | None = None
    pod_name: str = ""
    reconcile_interval: float = 300.0
    #: KUBETRADE_RATE_LIMIT: the exchange client's request throttle (on unless turned
    #: off); read exactly as the pre-flight check "Rate Limit Configured" reads it.
    rate_limit: bool = True
    #: KUBETRADE_DATADIR: the candle store every consumed exchange candle is recorded in
    #: (kubetrade.marketdata.recording); unset, nothing is recorded.
    candle_dir: str | None = None
    #: KUBETRADE_EGRESS_IP: what the exchange sees as this client's IP (Binance's
    #: request weight is per IP); one name per installation unless told otherwise.
    egress_ip: str = "default"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RunnerEnv:
        env = dict(os.environ if environ is None else environ)
        secrets_dir = Path(env.get("KUBETRADE_SECRETS_DIR", DEFAULT_SECRETS_DIR))
        api_key = env.get("BINANCE_API_KEY") or _read_secret(secrets_dir / "apiKey")
        secret = env.get("BINANCE_SECRET_KEY") or _read_secret(secrets_dir / "secretKey")
        redactor().add_secret(api_key)
        redactor().add_secret(secret)
        port = env.get("METRICS_PORT")
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            api_key=api_key,
            secret_key=secret,
            testnet=testnet_setting(env.get("BINANCE_TESTNET")),
            exchange_url=env.get("KUBETRADE_EXCHANGE_URL") or None,
            market_data=env.get("KUBETRADE_MARKET_DATA") or "exchange",
            replay_interval=float(env.get("KUBETRADE_REPLAY_INTERVAL") or 1.0),
            metrics_port=_metrics_port(port) if port else None,
            pod_name=env.get("POD_NAME", ""),
            reconcile_interval=float(env.get("KUBETRADE_RECONCILE_INTERVAL") or 300.0),
            rate_limit=client_throttle_enabled(env),
            candle_dir=env.get("KUBETRADE_DATADIR") or None,
            egress_ip=env.get("KUBETRADE_EGRESS_IP") or "default",
        )


def _read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value or None


class CandleClock:
    """Time as the market data says: the close time of the newest candle seen.

    In replay the candles are historical; orders, fills and trades must carry the
    candles' time (not today's) or the equity curve and trade list would disagree.
    Sleeping is real, so the replay is paced.
    """

    def __init__(self, tf_ms: int) -> None:
        self._tf_ms = tf_ms
        self._now = 0

    def observe(self, candle: Candle) -> None:
        self._now = max(self._now, candle.ts_ms + self._tf_ms)

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _ObservedSource:
    """Wraps a market source so the candle clock advances before each candle is used."""

    def __init__(self, inner: MarketSource, clock: CandleClock) -> None:
        self.inner = inner
        self.kind = inner.kind
        self._clock = clock

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    async def candles(self, cursor: Any) -> Any:
        async for symbol, candle in self.inner.candles(cursor):
            self._clock.observe(candle)
            yield symbol, candle


def replay_paths(spec: RunnerSpec, market_data: str) -> dict[str, Path]:
    """``replay:<csv>`` (every symbol) or ``replay:BTC/USDT=a.csv,ETH/USDT=b.csv``;
    ``replay:bundled`` uses the candles shipped in the package, ``replay:store`` the
    candle store (``kubetrade data download``)."""
    arg = market_data.split(":", 1)[1] if ":" in market_data else "bundled"
    if arg in ("", "bundled"):
        from kubetrade.exchange.replay import bundled_candles  # on use: pyarrow (see below)

        out: dict[str, Path] = {}
        for symbol in spec.symbols:
            path = bundled_candles(symbol, spec.timeframe)
            if path is None:
                raise ValueError(
                    f"spec.symbols: no bundled candles for {symbol} {spec.timeframe} (offline "
                    "replay ships BTC/USDT 1m and 1h); set KUBETRADE_MARKET_DATA=replay:<csv>"
                )
            out[symbol] = path
        return out
    if arg == "store":  # the candle store (KUBETRADE_DATADIR), series of the timeframe
        from kubetrade.marketdata.store import stored_paths  # on use: pyarrow, ~1 s

        return stored_paths(os.environ.get("KUBETRADE_DATADIR") or "data/candles",
                            spec.symbols, spec.timeframe)
    if "=" in arg:
        pairs = dict(part.split("=", 1) for part in arg.split(",") if part)
        return {s: Path(pairs[s]) for s in spec.symbols}
    return {s: Path(arg) for s in spec.symbols}


def account_key(manifest: dict[str, Any]) -> str:
    """The exchange account a Strategy trades on: its ``spec.exchange.credentialsSecret``
    (strategies with the same Secret share one account: its books, order budget and
    capital); "default" without one (paper)."""
    exchange = (manifest.get("spec") or {}).get("exchange") or {}
    return str(exchange.get("credentialsSecret") or "default")


def shared_budget(
    redis: Redis, keys: Keys, env: RunnerEnv, manifest: dict[str, Any]
) -> RedisBudget:
    """The rate budgets this runner shares with every client of its IP and account."""
    return RedisBudget(redis, keys, ip=env.egress_ip, account=account_key(manifest),
                       plan=budget_plan)


async def build_exchange(
    spec: RunnerSpec, env: RunnerEnv, clock: Clock, market_clock: Clock | None,
    budget: RateBudget | None = None,
) -> tuple[ExchangeClient, PaperExchange | None, ExchangeClient | None]:
    """(exchange the runner trades on, paper exchange if paper, live data client or None);
    ``budget``: the shared rate budgets live calls spend from."""
    data_client: ExchangeClient | None = None
    if spec.mode == "live" or env.market_data == "exchange":
        from kubetrade.exchange.binance import BinanceExchange  # on use: ccxt, ~2-3 s

        live = spec.mode == "live"
        data_client = BinanceExchange(
            api_key=env.api_key if live else None,
            secret=env.secret_key if live else None,
            testnet=spec.testnet if env.testnet is None else env.testnet,
            base_url=env.exchange_url,
            clock=clock,
        )
    if spec.mode == "live":
        if not env.api_key or not env.secret_key:
            raise ValueError(
                "live mode needs BINANCE_API_KEY and BINANCE_SECRET_KEY (or apiKey/secretKey "
                f"files in KUBETRADE_SECRETS_DIR, default {DEFAULT_SECRETS_DIR})"
            )
        from kubetrade.exchange.resilient import ResilientExchange  # live only (tenacity)

        assert data_client is not None
        resilient = ResilientExchange(data_client, clock, rate_limit_enabled=env.rate_limit,
                                      budget=budget)
        if not env.rate_limit:
            log.warning("exchange.rate_limit_off", strategy=spec.name,
                        note="KUBETRADE_RATE_LIMIT is off: requests are not throttled")
        # market data goes through the same breaker, so an outage trips it and the
        # feed's polls are the probes that close it again
        return resilient, None, resilient
    if data_client is not None:
        try:
            markets = await data_client.load_markets()
        except BaseException:
            await data_client.close()  # no unclosed ccxt session when the caller retries
            raise
        markets = {s: markets[s] for s in spec.symbols if s in markets}
    else:
        markets = {s: default_market(s) for s in spec.symbols}
    broker = PaperBroker(
        markets, {spec.quote_asset: spec.initial_capital}, max_fills_kept=PAPER_FILLS_KEPT
    )
    paper = PaperExchange(broker, market_clock or clock)
    return paper, paper, data_client


def build_market(
    spec: RunnerSpec, env: RunnerEnv, clock: Clock, data_client: ExchangeClient | None,
    lease: RedisLease | None = None,
) -> MarketSource:
    """``lease``: who records each series with KUBETRADE_DATADIR (None: a file lease in
    the data directory; docs/marketdata.md)."""
    if env.market_data.startswith("replay"):
        return load_replay(replay_paths(spec, env.market_data), clock, env.replay_interval,
                           timeframe=spec.timeframe)
    assert data_client is not None
    if env.candle_dir:
        from kubetrade.marketdata.recording import recording_source  # on use: pyarrow

        return recording_source(ExchangeSource(data_client, spec, clock), env.candle_dir,
                                spec.timeframe, env.pod_name or spec.name, clock, lease=lease)
    return ExchangeSource(data_client, spec, clock)


class ExchangeSource:
    """Live closed candles from the exchange: one ``CandleFeed`` per symbol, merged.

    Each feed resumes after the runner's cursor (back-filling what was missed while the
    runner was down); stale data is logged and waited out, never passed off as current.
    """

    kind = "exchange"

    def __init__(self, client: ExchangeClient, spec: RunnerSpec, clock: Clock) -> None:
        self.client = client
        self.spec = spec
        self.clock = clock

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "exchange": getattr(self.client, "name", "binance"),
                "symbols": self.spec.symbols, "timeframe": self.spec.timeframe}

    async def candles(self, cursor: Any) -> Any:
        from kubetrade.exchange.feed import CandleFeed, StaleData  # on use: ccxt

        tf = timeframe_ms(self.spec.timeframe)
        queue: asyncio.Queue[tuple[str, Candle]] = asyncio.Queue(maxsize=1000)

        async def pump(symbol: str) -> None:
            last = cursor.get(symbol)
            feed = CandleFeed(
                self.client, symbol, self.spec.timeframe, self.clock,
                since_ms=last + tf if last is not None else None,
            )
            while True:
                try:
                    candle = await feed.next()
                except StaleData as exc:
                    log.warning("market.stale", symbol=symbol, lag_s=exc.lag_ms / 1000)
                    await self.clock.sleep(feed.retry_s)
                    continue
                await queue.put((symbol, candle))

        tasks = [asyncio.create_task(pump(s)) for s in self.spec.symbols]
        try:
            while True:
                yield await queue.get()
        finally:
            for t in tasks:
                t.cancel()


async def create_runner(
    manifest: dict[str, Any],
    *,
    redis: Redis,
    keys: Keys,
    env: RunnerEnv,
    clock: Clock | None = None,
    limits_manifest: dict[str, Any] | None = None,
    options: RunnerOptions | None = None,
    namespace: str | None = None,
) -> tuple[RunnerParts, list[Any]]:
    """The parts of a runner (nothing restored yet: ``run_runner`` or
    ``Runner.restore`` does that) and the clients to close afterwards. ``namespace``:
    the Strategy's namespace when trading from a cluster (qualifies client order ids).
    Raises pydantic's ValidationError on a bad manifest, ValueError on a bad env."""
    clock = clock or SystemClock()
    spec = RunnerSpec.from_manifest(manifest, namespace=namespace)
    market_clock: CandleClock | None = None
    if env.market_data.startswith("replay"):
        market_clock = CandleClock(timeframe_ms(spec.timeframe))
    exchange, paper, data_client = await build_exchange(
        spec, env, clock, market_clock, shared_budget(redis, keys, env, manifest))
    # one recorder per series: through Redis when REDIS_URL is set (a cluster), else
    # through the data directory (one machine); docs/marketdata.md
    market = build_market(spec, env, clock, data_client,
                          RedisLease(redis, keys) if env.redis_url else None)
    if market_clock is not None:
        market = _ObservedSource(market, market_clock)
    options = options or RunnerOptions(
        reconcile_interval_s=env.reconcile_interval, paper=paper is not None
    )
    parts = RunnerParts(
        spec,
        redis=redis,
        keys=keys,
        exchange=exchange,
        market=market,
        clock=clock,
        market_clock=market_clock,
        limits=limits_from_manifest(limits_manifest),
        paper=paper,
        options=options,
    )
    closers = [c for c in {id(exchange): exchange, id(data_client): data_client}.values() if c]
    return parts, closers


async def run_runner(
    parts: RunnerParts,
    closers: list[Any],
    *,
    desired: DesiredState | None = None,
    namespace: str | None = None,
    api_client: Any | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> Runner:
    """Restore (recover, reconcile), apply the emergency and desired state in force,
    then trade until cancelled (or ``options.max_candles``); the runner when it ends.
    ``on_runner`` is told the runner once restored (kubetrade local hands it the kill
    switch in process). The clients in ``closers`` are closed in every case."""
    try:
        runner = await Runner.restore(parts)
        if on_runner is not None:
            on_runner(runner)
        log.info(
            "runner.market_data",
            strategy=runner.name,
            source=runner.market.describe(),
            note="live candles from the exchange" if runner.market.kind == "exchange"
            else "replay of recorded real candles (accelerated)",
        )
        cmd = await read_redis_emergency(runner.redis, runner.keys)
        if cmd is not None:
            # "none" resumes only if this runner last applied a stop/close-all (lifted
            # while it was down); otherwise it changes nothing
            await runner.apply_emergency(cmd)
        if desired is not None:
            await _initial_desired(runner, desired)
        else:
            # a Strategy file (or the cluster object read at start) with enabled: false
            # must not trade; in a cluster the Strategy watch follows later changes
            await runner.set_enabled(runner.spec.enabled, "spec")
        tasks = background_tasks(
            runner, desired=desired, namespace=namespace, api_client=api_client
        )
        await runner.run(tasks)
        return runner
    finally:
        for c in closers:
            with contextlib.suppress(Exception):
                await c.close()


async def _initial_desired(runner: Runner, desired: DesiredState) -> None:
    with contextlib.suppress(KeyError):
        await apply_strategy_manifest(runner, await desired.get_strategy(runner.name), "desired")
    await apply_risk_manifest(
        runner, await desired.get_risk_policy(runner.spec.risk_policy_ref), "desired"
    )


def decimal_env(name: str, default: str) -> Decimal:
    return Decimal(os.environ.get(name, default))


__all__ = [
    "CandleClock",
    "ReplaySource",
    "RunnerEnv",
    "RunnerParts",
    "create_runner",
    "run_runner",
]
