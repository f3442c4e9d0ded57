"""``kubetrade local``: runners, notifier and API/dashboard in one process.

Every Strategy YAML of a directory trades in paper mode (one runner each, as tasks of
the main event loop, with the kill switch and the Telegram notifier when configured),
desired state lives in Redis (:class:`LocalDesiredState`), and the API/dashboard serves
on http://127.0.0.1:8000 from its own thread and event loop (:mod:`.api_thread`), so a
burst of dashboard requests does not hold up the runners' loop.

It needs nothing installed: without ``REDIS_URL`` an embedded Redis holds the state (see
:mod:`.embedded_redis`); without internet the market data is a paced replay of real
recorded candles shipped with the package (see :mod:`.market`).

The API's port is bound before anything else starts, so a port in use fails the start
before any runner exists; SIGINT/SIGTERM stop it as :mod:`.stopping` says.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from kubetrade.api.app import create_app
from kubetrade.api.settings import ApiSettings
from kubetrade.cli._http import uvicorn_config
from kubetrade.cli._local.api_thread import ApiThread, DesiredOnLoop
from kubetrade.cli._local.embedded_redis import (
    API_POOL_CONNECTIONS,
    POOL_CONNECTIONS,
    EmbeddedRedis,
    bounded_redis,
    check_reachable,
    redis_url_or_embedded,
)
from kubetrade.cli._local.kept_halt import KeptHaltFile
from kubetrade.cli._local.kill_switch import LocalKillSwitch
from kubetrade.cli._local.latency import TimedMarket, decision_histogram
from kubetrade.cli._local.market import choose_market_data
from kubetrade.cli._local.seed import load_strategy_dir, seed_desired, with_risk_policy_file
from kubetrade.cli._local.stopping import (
    GRACEFUL_SHUTDOWN_S,
    RUNNER_CANCEL_S,
    RUNNER_GRACE_S,
    GatedMarket,
    StoppableServer,
    StopRequest,
    end_leftovers,
    exit_now,
    stop_tasks,
)
from kubetrade.domain.clock import SystemClock
from kubetrade.logs import get_logger
from kubetrade.resources.loader import strategy_with_defaults
from kubetrade.runner.assembly import RunnerEnv, create_runner, run_runner
from kubetrade.runner.metrics import serve_metrics
from kubetrade.state.desired import LocalDesiredState
from kubetrade.state.keys import Keys, keys_from_env
from kubetrade.state.store import Superseded

log = get_logger("kubetrade.local")


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
    data_dir: Path = Path("data")  # the embedded Redis' files (without REDIS_URL)
    forwarded_allow_ips: str = ""  # proxies whose X-Forwarded-* are trusted (none)


@dataclass
class LocalSystem:
    """The shared parts every component of the process is built on."""

    redis: Redis
    keys: Keys
    clock: SystemClock
    desired: LocalKillSwitch


async def run_local(options: LocalOptions) -> int:
    """Run the whole system until a stop (SIGINT/SIGTERM); 0 after a clean stop.

    Raises ValueError for a bad ``--strategies``/``--risk-policy`` and OSError (the
    API's port in use, Redis unreachable); on every way out the runners stop taking
    candles at once and the process ends within ``STOP_BOUND_S`` of the stop.
    """
    stop = StopRequest()
    failed = True
    with stop.handling_signals():
        try:
            code = await _run(options, stop)
            failed = False
        except asyncio.CancelledError:
            if not stop.requested:
                raise
            _uncancel()
            code, failed = 0, False  # stopped during start-up
        finally:
            stop.exit_code = 1 if failed else 0
            stuck = await end_leftovers()
            if stuck:
                log.error("local.exit_forced", tasks=stuck,
                          note="tasks ignored their cancel; the process ends without them")
                exit_now(stop.exit_code)
    return code


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound first: a port in use raises OSError (naming
    it) before any runner exists, so a failed start never trades."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"--host {host} --port {port}: {exc.strerror}") from exc
    return sock


async def _run(options: LocalOptions, stop: StopRequest) -> int:
    """Start everything, serve until the stop, stop everything (bounded)."""
    strategies, policies = load_strategy_dir(options.strategies_dir)
    sock = bind_api_socket(options.host, options.port)
    redis_url, embedded, where = redis_url_or_embedded(options.data_dir)
    redis = bounded_redis(redis_url, len(strategies),
                          burst=POOL_CONNECTIONS - API_POOL_CONNECTIONS)
    keys = keys_from_env()
    clock = SystemClock()
    desired = LocalKillSwitch(redis, keys, clock, check_strategy=strategy_with_defaults,
                              kept_file=KeptHaltFile(options.data_dir))
    system = LocalSystem(redis, keys, clock, desired)
    runners: list[asyncio.Task[Any]] = []
    others: list[asyncio.Task[Any]] = []
    try:
        await check_reachable(redis, where)
        await desired.restore_kept()  # a stop the last process could not write
        policies = with_risk_policy_file(policies, options.strategies_dir,
                                         options.risk_policy_file)
        manifests = await seed_desired(system.desired, strategies, policies)
        stop.checkpoint()
        env = await _runner_env(options, manifests)
        stop.checkpoint()
        api = _api_thread(system, options, where, redis_url, sock)
        stop.attach(api.server)
        await _start_tasks(system, env, manifests, stop, runners, others)
        log.info(
            "local.ready",
            url=f"http://{options.host}:{options.port}",
            strategies=[m["metadata"]["name"] for m in manifests],
        )
        await api.serve()
    finally:
        stop.cleaning_up = True
        stop.request("shutdown")
        await _stop(runners, others, desired, embedded)
        sock.close()
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
    stop: StopRequest,
    runners: list[asyncio.Task[Any]],
    others: list[asyncio.Task[Any]],
) -> None:
    """One supervised runner task per strategy (appended to ``runners``), then the
    notifier (to ``others``); appended as they start, so the caller stops what started."""
    for manifest in manifests:
        runners.append(
            asyncio.create_task(
                supervise(manifest, redis=system.redis, keys=system.keys, env=env,
                          desired=system.desired, stop=stop.event),
                name=f"runner-{manifest['metadata']['name']}",
            )
        )
    notifier = await start_notifier(system.redis, system.keys, system.desired)
    if notifier is not None:
        others.append(notifier)


def _api_thread(system: LocalSystem, options: LocalOptions, where: str, redis_url: str,
                sock: socket.socket) -> ApiThread:
    """The API/dashboard's server, to serve on ``sock`` (bound at start) from its own
    thread and loop (:mod:`.api_thread`), with its own Redis client; its desired state
    (kill switch included) runs on this loop. ``where`` state lives is shown by /health
    and the dashboard."""
    redis = bounded_redis(redis_url, 0, burst=API_POOL_CONNECTIONS)
    desired = DesiredOnLoop(system.desired, asyncio.get_running_loop())
    app = create_app(ApiSettings(), redis, desired, system.clock, system.keys,
                     state_where=where)
    config = uvicorn_config(
        app, host=options.host, port=options.port, forwarded=options.forwarded_allow_ips,
        # a stop must end: open WebSockets or slow requests get a few seconds, not forever
        graceful_s=GRACEFUL_SHUTDOWN_S, access_log=False, lifespan="on",
    )
    return ApiThread(StoppableServer(config), sock, redis)


async def _stop(
    runners: list[asyncio.Task[Any]],
    others: list[asyncio.Task[Any]],
    desired: LocalKillSwitch,
    embedded: EmbeddedRedis | None,
) -> None:
    """Stop the notifier at once and the runners after their grace (their market data
    has ended), both bounded; the kill switch writes a kept halt one last time (or
    leaves it in its file for the next start); close Redis, stop the embedded one."""
    stuck = await stop_tasks(others, grace_s=0, cancel_s=RUNNER_CANCEL_S)
    stuck += await stop_tasks(runners, grace_s=RUNNER_GRACE_S, cancel_s=RUNNER_CANCEL_S)
    if stuck:
        log.warning("local.shutdown_stuck", tasks=stuck)
    await desired.aclose()
    await desired.redis.aclose()
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


async def supervise(
    manifest: dict[str, Any],
    *,
    redis: Redis,
    keys: Keys,
    env: RunnerEnv,
    desired: LocalKillSwitch,
    stop: asyncio.Event,
) -> None:
    """Run one strategy until ``stop``; if it crashes, log why and start it again
    (state is in Redis). Its market data ends at ``stop``, so it takes no candle after.

    Restarts back off from 1 s, doubling, up to 60 s; a cancel ends it.
    """
    name = manifest["metadata"]["name"]
    delay = 1.0
    while not stop.is_set():
        try:
            await desired.settled()  # a stop kept while Redis was down is written first
            risk = await desired.get_risk_policy(
                (manifest.get("spec") or {}).get("riskPolicyRef", "default")
            )
            parts, closers = await create_runner(
                manifest, redis=redis, keys=keys, env=env, limits_manifest=risk
            )
            parts.market = TimedMarket(
                GatedMarket(parts.market, stop, name), decision_histogram().labels(name).observe,
                pace_s=env.replay_interval,
            )
            await run_runner(parts, closers, desired=desired,
                             on_runner=lambda r: desired.register(name, r.apply_emergency,
                                                                     r.halted_in_memory))
            return
        except asyncio.CancelledError:
            raise
        except Superseded as exc:  # restarting it would take the strategy back: both trade
            log.error("local.runner_superseded", strategy=name, error=str(exc),
                      note="not restarted; stop the other runner and restart this process")
            return
        except Exception as exc:
            if stop.is_set():
                log.warning("local.runner_stopped_with_error", strategy=name, error=str(exc))
                return
            log.exception("local.runner_crashed", strategy=name, error=str(exc),
                          restart_in_s=delay)
            await _sleep_unless(stop, delay)
            delay = min(delay * 2, 60.0)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
