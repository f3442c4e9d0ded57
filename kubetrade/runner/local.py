"""``kubetrade local``: the whole system in one process, on a laptop, offline if need be.

Every Strategy YAML of a directory trades in paper mode (one runner each, as tasks of
one event loop), the API/dashboard serves on http://127.0.0.1:8000, desired state lives
in Redis (:class:`LocalDesiredState`), and the Telegram notifier runs when configured.

It needs nothing installed: without ``REDIS_URL`` an embedded Redis (fakeredis'
TCP server on a loopback port) holds the state, in memory; without internet the market
data is a paced replay of real recorded candles shipped with the package.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.clock import SystemClock
from kubetrade.logs import get_logger
from kubetrade.runner.app import RunnerEnv, create_runner, run_runner
from kubetrade.state.desired import LocalDesiredState, NotFoundError
from kubetrade.state.keys import Keys, keys_from_env

log = get_logger("kubetrade.local")

BINANCE_PROBE_URL = "https://api.binance.com/api/v3/ping"
BINANCE_TESTNET_PROBE_URL = "https://testnet.binance.vision/api/v3/ping"
DEFAULT_REPLAY_INTERVAL = 0.5


@dataclass
class LocalOptions:
    strategies_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    risk_policy_file: Path | None = None
    market_data: str | None = None  # None = probe Binance, else as KUBETRADE_MARKET_DATA
    replay_interval: float | None = None
    probe_timeout: float = 2.0


class EmbeddedRedis:
    """fakeredis' TCP server on a free loopback port, served from a daemon thread."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-redis", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


#: Connections for request bursts (API, runners' commands), beyond those held for good.
POOL_CONNECTIONS = 64
#: Held for good per strategy: its emergency and desired-state subscriptions (+1 spare).
POOL_CONNECTIONS_PER_STRATEGY = 3


def bounded_redis(url: str, strategies: int) -> Redis:
    """One client for the whole process on a bounded pool: under a burst (dashboard,
    many runners) commands queue for a connection instead of opening one each until the
    process runs out of file descriptors. Subscriptions hold their connection for good,
    so the bound grows with the number of strategies."""
    from redis.asyncio import BlockingConnectionPool

    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=POOL_CONNECTIONS + POOL_CONNECTIONS_PER_STRATEGY * strategies,
        timeout=10,
    )
    return Redis(connection_pool=pool)


async def probe_binance(url: str, wait_s: float) -> bool:
    """Is Binance's public REST API reachable from here? A short timeout: offline is normal."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=wait_s) as client:
            response = await client.get(url)
        return response.status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def load_strategy_dir(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Strategy manifests, RiskPolicy manifests) of a directory of YAML files."""
    from kubetrade.resources import RiskPolicy, Strategy, load_manifests
    from kubetrade.runner.app import manifest_of

    if not path.is_dir():
        raise ValueError(f"--strategies: {path} is not a directory")
    resources = load_manifests(path)
    strategies = [manifest_of(r) for r in resources if isinstance(r, Strategy)]
    policies = [manifest_of(r) for r in resources if isinstance(r, RiskPolicy)]
    if not strategies:
        raise ValueError(f"--strategies: no Strategy manifest in {path}")
    return strategies, policies


async def seed_desired(
    desired: LocalDesiredState,
    strategies: list[dict[str, Any]],
    policies: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Put the files' manifests into local desired state; paper mode is forced.

    With a persistent REDIS_URL, desired state outlives the process and holds what
    people changed while it ran: a strategy already stored takes the file's spec except
    ``enabled`` (a dashboard/Telegram toggle wins over the file), and a RiskPolicy
    already stored is kept as it is (settings changed on the dashboard); what is
    missing is seeded from the files. Each choice is logged.
    """
    out = []
    for manifest in strategies:
        spec = manifest.setdefault("spec", {})
        name = manifest["metadata"]["name"]
        if spec.get("mode") == "live":
            log.warning(
                "local.paper_only",
                strategy=name,
                note="kubetrade local trades paper money only; mode forced to paper",
            )
            spec["mode"] = "paper"
        try:
            stored: dict[str, Any] | None = await desired.get_strategy(name)
        except NotFoundError:
            stored = None
        if stored is None:
            log.info("local.seed_strategy", strategy=name, source="file")
        else:
            kept = bool((stored.get("spec") or {}).get("enabled", True))
            in_file = bool(spec.get("enabled", True))
            spec["enabled"] = kept
            log.info(
                "local.seed_strategy",
                strategy=name,
                source="file spec, enabled from stored desired state",
                enabled=kept,
                file_enabled=in_file,
            )
        out.append(await desired.put_strategy(manifest, actor="local"))
    for policy in policies:
        name = (policy.get("metadata") or {}).get("name") or "default"
        if await desired.has_risk_policy(name):
            log.info("local.seed_riskpolicy", policy=name, source="stored desired state",
                     note="kept as stored (changed settings survive restarts); the file's "
                     "RiskPolicy seeds it only when none is stored")
            continue
        log.info("local.seed_riskpolicy", policy=name, source="file")
        await desired.put_risk_policy(policy, actor="local")
    return out


async def start_notifier(redis: Redis, keys: Keys, desired: LocalDesiredState) -> Any | None:
    if not (os.environ.get("TELEGRAM_BOT_TOKEN") and os.environ.get("TELEGRAM_CHAT_ID")):
        return None
    try:
        from kubetrade.notify.service import run_notify
        from kubetrade.notify.settings import NotifySettings
    except ImportError:
        log.warning("local.telegram_unavailable", note="kubetrade.notify is not installed")
        return None
    settings = NotifySettings()  # type: ignore[call-arg]
    log.info("local.telegram", note="Telegram notifier started")
    return asyncio.create_task(run_notify(settings, redis, keys, desired), name="notify")


async def run_local(options: LocalOptions) -> int:
    import uvicorn

    from kubetrade.api.app import create_app
    from kubetrade.api.settings import ApiSettings

    strategies, policies = load_strategy_dir(options.strategies_dir)
    embedded: EmbeddedRedis | None = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis()
        redis_url = embedded.url
        log.warning(
            "local.redis_embedded",
            url=redis_url,
            note="REDIS_URL not set: using an embedded in-memory Redis (fakeredis); state "
            "lives in memory and is lost when this process exits. Set REDIS_URL to keep it.",
        )
    else:
        log.info("local.redis", note="state in the Redis at REDIS_URL")
    redis = bounded_redis(redis_url, len(strategies))
    keys = keys_from_env()
    clock = SystemClock()
    desired = LocalDesiredState(redis, keys, clock)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await redis.ping()
        if options.risk_policy_file is not None:
            from kubetrade.resources import RiskPolicy, load_manifests
            from kubetrade.runner.app import manifest_of

            policies += [
                manifest_of(r) for r in load_manifests(options.risk_policy_file)
                if isinstance(r, RiskPolicy)
            ]
        manifests = await seed_desired(desired, strategies, policies)

        env = RunnerEnv.from_env()
        if env.metrics_port:
            from kubetrade.runner.metrics import serve_metrics

            serve_metrics(env.metrics_port, addr=options.host)
            log.info("local.metrics", url=f"http://{options.host}:{env.metrics_port}/metrics")
        market = options.market_data or os.environ.get("KUBETRADE_MARKET_DATA")
        if not market:
            testnet = env.testnet if env.testnet is not None else all(
                (m.get("spec", {}).get("exchange") or {}).get("testnet", True) for m in manifests
            )
            probe = (env.exchange_url.rstrip("/") + "/api/v3/ping") if env.exchange_url \
                else (BINANCE_TESTNET_PROBE_URL if testnet else BINANCE_PROBE_URL)
            reachable = await probe_binance(probe, options.probe_timeout)
            market = "exchange" if reachable else "replay:bundled"
        env.market_data = market
        if options.replay_interval is not None:
            env.replay_interval = options.replay_interval
        elif not os.environ.get("KUBETRADE_REPLAY_INTERVAL"):
            env.replay_interval = DEFAULT_REPLAY_INTERVAL
        if market == "exchange":
            log.info("local.market_data", source="exchange",
                     note="Binance public market data is reachable: live candles, paper fills")
        else:
            log.warning(
                "local.market_data",
                source=market,
                interval_s=env.replay_interval,
                note="Binance is not reachable (or replay was asked for): replaying bundled "
                "real candles at an accelerated pace",
            )

        for manifest in manifests:
            tasks.append(
                asyncio.create_task(
                    _supervise(manifest, redis=redis, keys=keys, env=env, desired=desired),
                    name=f"runner-{manifest['metadata']['name']}",
                )
            )
        notifier = await start_notifier(redis, keys, desired)
        if notifier is not None:
            tasks.append(notifier)

        app = create_app(ApiSettings(), redis, desired, clock, keys)
        config = uvicorn.Config(
            app, host=options.host, port=options.port, log_config=None, access_log=False,
            lifespan="on",
            # a stop must end: open WebSockets or slow requests get 5 s, not forever
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        log.info(
            "local.ready",
            url=f"http://{options.host}:{options.port}",
            strategies=[m["metadata"]["name"] for m in manifests],
        )
        await server.serve()
    finally:
        for t in tasks:
            t.cancel()
        if tasks:
            # bounded: a runner stuck in an exchange call must not keep the process alive
            _, stuck = await asyncio.wait(tasks, timeout=15)
            if stuck:
                log.warning("local.shutdown_stuck", tasks=[t.get_name() for t in stuck])
        await redis.aclose()
        if embedded is not None:
            embedded.stop()
    return 0


class _Server:
    """uvicorn's server, minus re-raising SIGTERM/SIGINT after a clean shutdown: a stop
    request that ended in an orderly shutdown is exit status 0 (for make, systemd)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                super().handle_exit(sig, frame)
                self._captured_signals.clear()

        return Server(config)


async def _supervise(
    manifest: dict[str, Any],
    *,
    redis: Redis,
    keys: Keys,
    env: RunnerEnv,
    desired: LocalDesiredState,
) -> None:
    """Run one strategy; if it crashes, log why and start it again (state is in Redis)."""
    name = manifest["metadata"]["name"]
    delay = 1.0
    while True:
        try:
            risk = await desired.get_risk_policy(
                (manifest.get("spec") or {}).get("riskPolicyRef", "default")
            )
            runner, closers = await create_runner(
                manifest, redis=redis, keys=keys, env=env, limits_manifest=risk
            )
            await run_runner(runner, closers, redis=redis, keys=keys, desired=desired)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("local.runner_crashed", strategy=name, error=str(exc),
                          restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
