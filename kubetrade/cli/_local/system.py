"""``kubetrade local``: runners, notifier and API/dashboard in one process.

Every Strategy YAML of a directory trades in paper mode (one runner each, as tasks of
one event loop), the API/dashboard serves on http://127.0.0.1:8000, desired state lives
in Redis (:class:`LocalDesiredState`), and the Telegram notifier runs when configured.

It needs nothing installed: without ``REDIS_URL`` an embedded Redis holds the state (see
:mod:`.embedded_redis`); without internet the market data is a paced replay of real
recorded candles shipped with the package (see :mod:`.market`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from redis.asyncio import Redis

from kubetrade.api.app import create_app
from kubetrade.api.settings import ApiSettings
from kubetrade.cli._local.embedded_redis import (
    EmbeddedRedis,
    bounded_redis,
    redis_url_or_embedded,
)
from kubetrade.cli._local.market import choose_market_data
from kubetrade.cli._local.seed import load_risk_policy_file, load_strategy_dir, seed_desired
from kubetrade.domain.clock import SystemClock
from kubetrade.logs import get_logger
from kubetrade.runner.assembly import RunnerEnv, create_runner, run_runner
from kubetrade.runner.metrics import serve_metrics
from kubetrade.state.desired import LocalDesiredState
from kubetrade.state.keys import Keys, keys_from_env

log = get_logger("kubetrade.local")

#: Seconds the runner tasks get to end after cancel: one stuck in an exchange call must
#: not keep the process alive.
SHUTDOWN_TIMEOUT_S = 15
#: Seconds uvicorn gives open WebSockets and slow requests at a stop.
GRACEFUL_SHUTDOWN_S = 5


@dataclass
class LocalOptions:
    """What ``kubetrade local`` was asked for (its command-line options)."""

    strategies_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    risk_policy_file: Path | None = None
    market_data: str | None = None  # None = probe Binance, else as KUBETRADE_MARKET_DATA
    replay_interval: float | None = None
    probe_timeout: float = 2.0


@dataclass
class LocalSystem:
    """The shared parts every component of the process is built on."""

    redis: Redis
    keys: Keys
    clock: SystemClock
    desired: LocalDesiredState


async def run_local(options: LocalOptions) -> int:
    """Run the whole system until uvicorn stops (SIGINT/SIGTERM); 0 after a clean stop.

    Raises ValueError for a bad ``--strategies``/``--risk-policy`` and OSError (e.g.
    Redis unreachable); runner tasks are cancelled and Redis closed on every way out.
    """
    strategies, policies = load_strategy_dir(options.strategies_dir)
    redis_url, embedded = redis_url_or_embedded()
    redis = bounded_redis(redis_url, len(strategies))
    keys = keys_from_env()
    clock = SystemClock()
    system = LocalSystem(redis, keys, clock, LocalDesiredState(redis, keys, clock))
    tasks: list[asyncio.Task[Any]] = []
    try:
        await redis.ping()
        policies += load_risk_policy_file(options.risk_policy_file)
        manifests = await seed_desired(system.desired, strategies, policies)
        env = await _runner_env(options, manifests)
        await _start_tasks(system, env, manifests, tasks)
        await _serve_api(system, options, manifests)
    finally:
        await _stop(tasks, redis, embedded)
    return 0


async def _runner_env(options: LocalOptions, manifests: list[dict[str, Any]]) -> RunnerEnv:
    """The runners' environment: from the process environment, with the metrics server
    started when asked and the market data chosen."""
    env = RunnerEnv.from_env()
    if env.metrics_port:
        serve_metrics(env.metrics_port, addr=options.host)
        log.info("local.metrics", url=f"http://{options.host}:{env.metrics_port}/metrics")
    await choose_market_data(
        env,
        manifests,
        market_data=options.market_data,
        replay_interval=options.replay_interval,
        probe_timeout=options.probe_timeout,
    )
    return env


async def _start_tasks(
    system: LocalSystem,
    env: RunnerEnv,
    manifests: list[dict[str, Any]],
    tasks: list[asyncio.Task[Any]],
) -> None:
    """One supervised runner task per strategy, then the notifier; each task is appended
    to ``tasks`` as it starts, so the caller stops whatever started."""
    for manifest in manifests:
        tasks.append(
            asyncio.create_task(
                supervise(manifest, redis=system.redis, keys=system.keys, env=env,
                          desired=system.desired),
                name=f"runner-{manifest['metadata']['name']}",
            )
        )
    notifier = await start_notifier(system.redis, system.keys, system.desired)
    if notifier is not None:
        tasks.append(notifier)


async def _serve_api(
    system: LocalSystem, options: LocalOptions, manifests: list[dict[str, Any]]
) -> None:
    """Serve the API/dashboard on ``options.host:options.port`` until a stop signal."""
    app = create_app(ApiSettings(), system.redis, system.desired, system.clock, system.keys)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_config=None, access_log=False,
        lifespan="on",
        # a stop must end: open WebSockets or slow requests get 5 s, not forever
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = QuietExitServer(config)
    log.info(
        "local.ready",
        url=f"http://{options.host}:{options.port}",
        strategies=[m["metadata"]["name"] for m in manifests],
    )
    await server.serve()


async def _stop(
    tasks: list[asyncio.Task[Any]], redis: Redis, embedded: EmbeddedRedis | None
) -> None:
    """Cancel ``tasks`` and wait for them (bounded), close Redis, stop the embedded one."""
    for t in tasks:
        t.cancel()
    if tasks:
        # bounded: a runner stuck in an exchange call must not keep the process alive
        _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S)
        if stuck:
            log.warning("local.shutdown_stuck", tasks=[t.get_name() for t in stuck])
    await redis.aclose()
    if embedded is not None:
        embedded.stop()


async def start_notifier(
    redis: Redis, keys: Keys, desired: LocalDesiredState
) -> asyncio.Task[Any] | None:
    """The Telegram notifier as a task when TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are
    set (None otherwise, or when kubetrade.notify cannot be imported)."""
    if not (os.environ.get("TELEGRAM_BOT_TOKEN") and os.environ.get("TELEGRAM_CHAT_ID")):
        return None
    try:
        # optional: a build without the notifier still runs local mode
        from kubetrade.notify.service import run_notify
        from kubetrade.notify.settings import NotifySettings
    except ImportError:
        log.warning("local.telegram_unavailable", note="kubetrade.notify is not installed")
        return None
    settings = NotifySettings()  # type: ignore[call-arg]
    log.info("local.telegram", note="Telegram notifier started")
    return asyncio.create_task(run_notify(settings, redis, keys, desired), name="notify")


class QuietExitServer(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM/SIGINT after a clean shutdown: a stop
    request that ended in an orderly shutdown is exit status 0 (for make, systemd)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


async def supervise(
    manifest: dict[str, Any],
    *,
    redis: Redis,
    keys: Keys,
    env: RunnerEnv,
    desired: LocalDesiredState,
) -> None:
    """Run one strategy; if it crashes, log why and start it again (state is in Redis).

    Restarts back off from 1 s, doubling, up to 60 s; a cancel ends it.
    """
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
