"""``kubetrade runner``: one strategy trading (what a runner pod executes)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from kubetrade.cli._command import add_cluster_arguments, add_command

_T = TypeVar("_T")


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "runner", main, "run one strategy (a runner pod's command)",
                    "Trade one Strategy: from the cluster (--strategy NAME --namespace NS) "
                    "or from a file (--strategy-file FILE). State lives in Redis (REDIS_URL) "
                    "and survives restarts; see docs for the environment variables.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--strategy", help="name of the Strategy custom resource")
    src.add_argument("--strategy-file", type=Path, help="Strategy YAML (no cluster needed)")
    add_cluster_arguments(p, (None, "namespace of the Strategy resource"), short=False,
                          kubeconfig=None)
    p.add_argument("--risk-policy-file", type=Path, default=None,
                   help="RiskPolicy YAML for --strategy-file (default: a RiskPolicy in the "
                   "same file, else the defaults)")
    p.add_argument("--max-candles", type=int, default=None,
                   help="stop after this many candles (testing)")


def load_file_manifests(
    strategy_file: Path, risk_file: Path | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from kubetrade.cli._risk_env import risk_policy_from_env
    from kubetrade.resources import RiskPolicy, load_manifests, load_strategy_file
    from kubetrade.runner.assembly import manifest_of

    strategy = load_strategy_file(strategy_file)
    policies = [
        r for path in ([risk_file] if risk_file else [strategy_file])
        for r in load_manifests(path) if isinstance(r, RiskPolicy)
    ]
    wanted = strategy.spec.risk_policy_ref
    policy = next((p for p in policies if p.metadata.name == wanted), None)
    if policy is None and policies and risk_file is not None:
        policy = policies[0]
    if policy is None:  # the runbook's STOP_LOSS_PCT etc., as preflight reads them
        return manifest_of(strategy), risk_policy_from_env(wanted, os.environ)
    return manifest_of(strategy), manifest_of(policy)


async def _run(args: argparse.Namespace) -> int:
    from kubetrade.exchange.base import TransientError
    from kubetrade.logs import get_logger
    from kubetrade.runner.assembly import RunnerEnv, create_runner, run_runner
    from kubetrade.runner.core import RunnerOptions
    from kubetrade.runner.metrics import serve_metrics
    from kubetrade.state.client import RedisError, ping
    from kubetrade.state.keys import keys_from_env

    log = get_logger("kubetrade.cli.runner")
    env = RunnerEnv.from_env()
    if env.metrics_port:
        serve_metrics(env.metrics_port)
    api_client = None
    namespace = None
    if args.strategy_file is not None:
        manifest, risk = load_file_manifests(args.strategy_file, args.risk_policy_file)
    else:
        from kubetrade.runner.kube import load_kube_config

        namespace = args.namespace or "default"
        api_client = load_kube_config()
        manifest, risk = await _cluster_manifests(args.strategy, namespace, api_client)
    redis = _redis_client(env.redis_url)
    keys = keys_from_env()
    options = RunnerOptions(reconcile_interval_s=env.reconcile_interval,
                            max_candles=args.max_candles)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: stop_task(task, loop, log))
    name = str((manifest.get("metadata") or {}).get("name", "?"))
    try:
        # the spec and keys are checked first (a bad one exits 2 at once), then the
        # exchange and Redis are waited for
        runner, closers = await _until_reachable(
            lambda: create_runner(manifest, redis=redis, keys=keys, env=env,
                                  limits_manifest=risk, options=options, namespace=namespace),
            name, "exchange", (TransientError,),
        )
        try:
            await _until_reachable(lambda: ping(redis), name, "redis", (RedisError, OSError))
        except BaseException:
            for client in closers:
                await client.close()
            raise
        options.paper = runner.paper is not None
        log.info("runner.starting", strategy=runner.name, mode=runner.spec.mode,
                 pod=env.pod_name, market_data=env.market_data)
        await run_runner(runner, closers, namespace=namespace, api_client=api_client)
    except asyncio.CancelledError:
        log.info("runner.stopped", strategy=name, reason="signal")
    finally:
        await redis.aclose()
    return 0


def _redis_client(url: str | None) -> Any:
    """A client for REDIS_URL; unset, the local default, said once (runner.redis_default)."""
    from kubetrade.logs import get_logger
    from kubetrade.state.client import DEFAULT_URL, connect

    if not url:
        get_logger("kubetrade.cli.runner").warning(
            "runner.redis_default", url=DEFAULT_URL,
            note="REDIS_URL is not set; state goes to the local default")
    return connect(url or DEFAULT_URL)


async def _cluster_manifests(
    name: str, namespace: str, api_client: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the Strategy, its RiskPolicy or None: a missing policy means the defaults, said
    loudly) from the cluster."""
    from kubetrade.logs import get_logger
    from kubetrade.runner.kube import get_object

    manifest: dict[str, Any] = await asyncio.to_thread(
        get_object, namespace, "strategies", name, api_client)
    ref = (manifest.get("spec") or {}).get("riskPolicyRef", "default")
    try:
        risk: dict[str, Any] | None = await asyncio.to_thread(
            get_object, namespace, "riskpolicies", ref, api_client)
    except Exception as exc:
        get_logger("kubetrade.cli.runner").warning(
            "risk.policy_unavailable", policy=ref, error=str(exc))
        risk = None
    return manifest, risk


#: Seconds after a stop signal before a runner still running is cancelled again.
STOP_RECANCEL_S = 5.0


def stop_task(task: asyncio.Task[Any] | None, loop: asyncio.AbstractEventLoop, log: Any) -> None:
    """Cancel the runner's task on SIGTERM/SIGINT, and again every ``STOP_RECANCEL_S``
    while it runs on (a cancel can be lost, e.g. in Python 3.11's ``asyncio.wait_for``;
    the pod would then run until its grace period's SIGKILL), logging where every task
    waits (``runner.stop_slow``)."""
    if task is None or task.done():
        return
    task.cancel()

    def again() -> None:
        if task.done():
            return
        stacks = {t.get_name(): awaiting(t) for t in asyncio.all_tasks(loop)}
        log.warning("runner.stop_slow", after_s=STOP_RECANCEL_S, tasks=stacks)
        task.cancel()
        loop.call_later(STOP_RECANCEL_S, again)

    loop.call_later(STOP_RECANCEL_S, again)


def awaiting(task: asyncio.Task[Any], limit: int = 16) -> list[str]:
    """Where ``task`` waits: its coroutine and each coroutine or async generator it
    awaits in turn, outermost first (``Task.get_stack`` gives only the outermost frame
    of a suspended task), as ``file:line function``."""
    out: list[str] = []
    node: Any = task.get_coro()
    while node is not None and len(out) < limit:
        frame = getattr(node, "cr_frame", None) or getattr(node, "ag_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        node = getattr(node, "cr_await", None) or getattr(node, "ag_await", None)
    return out


STARTUP_RETRY_S = (2.0, 5.0, 10.0, 30.0, 60.0)
"""Waits between start attempts while the exchange does not answer (then 60 s each)."""


async def _until_reachable(
    call: Callable[[], Awaitable[_T]], strategy: str, what: str,
    transient: tuple[type[BaseException], ...],
) -> _T:
    """``call()``, retried while ``what`` (redis, exchange) does not answer (one of
    ``transient``), with one ``runner.<what>_unreachable`` line per attempt instead of a
    traceback; a signal cancels the wait. Anything else (a bad spec, a refused key) is
    raised at once."""
    from kubetrade.logs import get_logger

    log = get_logger("kubetrade.cli.runner")
    attempt = 0
    while True:
        try:
            return await call()
        except transient as exc:
            wait = STARTUP_RETRY_S[min(attempt, len(STARTUP_RETRY_S) - 1)]
            attempt += 1
            log.warning(f"runner.{what}_unreachable", strategy=strategy, error=str(exc),
                        attempt=attempt, retry_in_s=wait)
            await asyncio.sleep(wait)


def main(args: argparse.Namespace) -> int:
    from kubetrade.logs import configure_logging, get_logger
    from kubetrade.state.store import Superseded

    configure_logging()
    try:
        return asyncio.run(_run(args))
    except (ValueError, OSError) as exc:
        get_logger("kubetrade.cli.runner").error("runner.failed", error=str(exc))
        print(f"kubetrade runner: {exc}", file=sys.stderr)
        return 2
    except Superseded as exc:  # another runner of the strategy started: it trades now
        get_logger("kubetrade.cli.runner").error("runner.superseded", error=str(exc))
        print(f"kubetrade runner: {exc}", file=sys.stderr)
        return 1
