"""The runner against a real kube-apiserver: the Emergency CR halts it directly (the
kill switch path that works while Redis is down), Strategy/RiskPolicy changes reach a
running runner, and `kubetrade runner --strategy NAME --namespace NS` (the pod's command)
trades from the custom resources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from redis.asyncio import Redis

from kubetrade.domain.clock import ManualClock, SystemClock
from kubetrade.exchange.replay import bundled_candles
from kubetrade.runner.assembly import RunnerEnv, create_runner
from kubetrade.runner.core import Runner, RunnerOptions
from kubetrade.runner.emergency import watch_kubernetes
from kubetrade.runner.watch import watch_cluster_desired
from kubetrade.state.keys import Keys

GROUP, VERSION = "kubetrade.io", "v1alpha1"
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CSV = bundled_candles("BTC/USDT")

STRATEGY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "Strategy",
    "metadata": {"name": "btc-sma"},
    "spec": {
        "algorithm": "sma-crossover",
        "parameters": {"fastPeriod": 5, "slowPeriod": 20},
        "symbols": ["BTC/USDT"],
        "timeframe": "1m",
        "mode": "paper",
    },
}


async def wait_until(check: Callable[[], Coroutine[Any, Any, Any]], what: str) -> Any:
    async def loop() -> Any:
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)

    try:
        return await asyncio.wait_for(loop(), 30)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def make_runner(redis: Redis, keys: Keys) -> Runner:
    env = RunnerEnv(market_data=f"replay:{CSV}", replay_interval=0)
    parts, _ = await create_runner(
        STRATEGY, redis=redis, keys=keys, env=env, clock=ManualClock(1),
        options=RunnerOptions(reconcile_interval_s=0),
    )
    runner = await Runner.restore(parts)
    return runner


async def _no_task_left_behind() -> None:
    """Every task the test started must end when cancelled; one that does not would hang
    the event loop's shutdown (and the suite) instead of failing here, by name."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if others:
        _, pending = await asyncio.wait(others, timeout=10)
        assert not pending, [repr(t.get_coro()) for t in pending]


def _crs(api_client: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api_client)


async def test_emergency_cr_halts_runner_directly(
    redis_client: Redis, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    keys = Keys("kt")
    runner = await make_runner(redis_client, keys)
    watcher = asyncio.create_task(
        watch_kubernetes(k8s_namespace, runner.apply_emergency, SystemClock(), k8s_api_client)
    )
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Emergency",
        "metadata": {"name": "default"},
        "spec": {"action": "stop", "reason": "drill", "requestedBy": "kubectl-user"},
    }
    await asyncio.to_thread(
        _crs(k8s_api_client).create_namespaced_custom_object,
        GROUP, VERSION, k8s_namespace, "emergencies", body,
    )

    async def acked(action: str) -> bool:
        raw = await redis_client.hget(keys.emergency_acks, "btc-sma")
        return bool(raw) and json.loads(raw or "{}")["action"] == action

    await wait_until(lambda: acked("stop"), "the runner to halt and ack the Emergency CR")
    assert runner.engine is not None and runner.engine.is_halted
    assert "kubectl-user" in runner.engine.halted_reason  # type: ignore[union-attr]
    await asyncio.to_thread(
        _crs(k8s_api_client).patch_namespaced_custom_object,
        GROUP, VERSION, k8s_namespace, "emergencies", "default", {"spec": {"action": "none"}},
    )

    await wait_until(lambda: acked("none"), "the runner to resume when the action is none")
    assert not runner.engine.is_halted
    watcher.cancel()
    await _no_task_left_behind()
    audit = [f for _, f in await redis_client.xrange(keys.audit)]
    applied = [json.loads(f["detail"]) for f in audit if f["action"] == "emergency.stop.applied"]
    assert applied and applied[0]["source"] == "kubernetes"


async def test_riskpolicy_and_strategy_changes_reach_running_runner(
    redis_client: Redis, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    crs = _crs(k8s_api_client)
    policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy",
              "metadata": {"name": "default"}, "spec": {"stopLossPct": 5.0}}
    await asyncio.to_thread(crs.create_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "riskpolicies", policy)
    await asyncio.to_thread(crs.create_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "strategies", STRATEGY)
    runner = await make_runner(redis_client, Keys("kt"))
    watcher = asyncio.create_task(watch_cluster_desired(k8s_namespace, runner, k8s_api_client))
    await asyncio.to_thread(crs.patch_namespaced_custom_object, GROUP, VERSION, k8s_namespace,
                            "riskpolicies", "default", {"spec": {"stopLossPct": 2.5}})

    async def limits() -> bool:
        return runner.limits.stop_loss_pct == Decimal("2.5")

    await wait_until(limits, "the RiskPolicy change in the running engine")
    await asyncio.to_thread(crs.patch_namespaced_custom_object, GROUP, VERSION, k8s_namespace,
                            "strategies", "btc-sma", {"spec": {"enabled": False}})

    async def disabled() -> bool:
        return bool(runner.engine and runner.engine.is_halted)

    await wait_until(disabled, "the disabled Strategy to halt the runner")
    watcher.cancel()
    # finish the watch inside the test: left to the loop's shutdown it once hung teardown
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(watcher, 30)
    await _no_task_left_behind()


def test_runner_command_reads_its_custom_resources(
    redis_url: str, kubeconfig: str, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    import redis

    crs = _crs(k8s_api_client)
    crs.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "strategies", STRATEGY)
    prefix = f"k8s-{k8s_namespace}"
    env = {**os.environ, "REDIS_URL": redis_url, "KUBETRADE_REDIS_PREFIX": prefix,
           "KUBECONFIG": kubeconfig, "KUBETRADE_MARKET_DATA": f"replay:{CSV}",
           "KUBETRADE_REPLAY_INTERVAL": "0", "POD_NAME": "btc-sma-runner-0"}
    done = subprocess.run(
        [KUBETRADE, "runner", "--strategy", "btc-sma", "--namespace", k8s_namespace,
         "--max-candles", "600"],
        env=env, capture_output=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    summary = r.hgetall(Keys(prefix).summary("btc-sma"))
    assert summary["mode"] == "paper" and int(summary["trades"]) >= 1
    events = [json.loads(line).get("event") for line in done.stdout.decode().splitlines()
              if line.startswith("{")]
    assert "runner.starting" in events and "trade.closed" in events


def test_examples_apply_to_the_real_api_server(
    apiserver: Any, k8s_namespace: str, kubetrade_crds: Path
) -> None:
    """The shipped examples are valid custom resources, not just valid YAML."""
    examples = Path(__file__).resolve().parents[3] / "examples"
    out = apiserver.kubectl("apply", "-n", k8s_namespace, "-f", str(examples),
                            "-f", str(examples / "strategies"))
    applied = out.stdout
    for name in ("strategy.kubetrade.io/btc-sma", "strategy.kubetrade.io/btc-rsi",
                 "strategy.kubetrade.io/btc-bollinger", "riskpolicy.kubetrade.io/default"):
        assert name in applied, applied


def test_no_example_resets_the_kill_switch() -> None:
    """Re-applying the examples (or a GitOps copy of them) must never undo a stop: no
    shipped file is an Emergency (the chart and the API create `default`; people change
    it with `kubectl patch`). An examples/emergency.yaml with `action: none` once resumed
    every runner on `kubectl apply -f examples/`."""
    examples = Path(__file__).resolve().parents[3] / "examples"
    kinds = [(path, doc.get("kind")) for path in examples.rglob("*.yaml")
             for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    assert kinds, "no examples found"
    assert [path for path, kind in kinds if kind == "Emergency"] == []


async def test_deleting_strategy_with_close_positions_sells_them(
    redis_client: Redis, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    """The operator keeps a finalizer on the Strategy and waits for the runner: with
    closePositionsOnDelete the runner sells what it holds when deletion starts."""
    crs = _crs(k8s_api_client)
    body = json.loads(json.dumps(STRATEGY))
    body["metadata"]["finalizers"] = ["kubetrade.io/test-hold"]
    body["spec"]["closePositionsOnDelete"] = True
    await asyncio.to_thread(crs.create_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "strategies", body)
    keys = Keys("kt")
    runner = await make_runner(redis_client, keys)
    assert runner.engine is not None
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        if runner.engine.positions:
            break
    assert runner.engine.positions
    watcher = asyncio.create_task(watch_cluster_desired(k8s_namespace, runner, k8s_api_client))
    await asyncio.to_thread(crs.delete_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "strategies", "btc-sma")

    async def sold() -> bool:
        return not await redis_client.hlen(keys.positions("btc-sma"))

    await wait_until(sold, "the positions to be sold on deletion")
    assert runner.engine.is_halted
    watcher.cancel()
    await asyncio.to_thread(crs.patch_namespaced_custom_object, GROUP, VERSION, k8s_namespace,
                            "strategies", "btc-sma", {"metadata": {"finalizers": []}})


async def test_restart_keeps_max_drawdown_halt_despite_emergency_none(
    redis_client: Redis, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    """A max-drawdown halt lasts until a person resumes: a pod restart, whose Emergency
    watch first reports the current action (none), must not lift it. A real transition
    stop -> none (a person's resume) still does."""
    keys = Keys("kt")
    policy = {"spec": {"maxDrawdownPct": 0.3, "maxPositionSizePct": 90,
                       "strategyMaxConsecutiveLosses": 0, "dailyLossLimitPct": 0}}
    env = RunnerEnv(market_data=f"replay:{CSV}", replay_interval=0)

    async def runner_from_redis() -> Runner:
        parts, _ = await create_runner(
            STRATEGY, redis=redis_client, keys=keys, env=env, clock=ManualClock(1),
            limits_manifest=policy, options=RunnerOptions(reconcile_interval_s=0),
        )
        runner = await Runner.restore(parts)
        return runner

    first = await runner_from_redis()
    async for symbol, candle in first.market.candles(first.cursor):
        await first.process_candle(symbol, candle)
        if first.engine is not None and "max_drawdown" in first.engine.halts:
            break
    assert first.engine is not None and "max_drawdown" in first.engine.halts
    crs = _crs(k8s_api_client)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Emergency",
            "metadata": {"name": "default"}, "spec": {"action": "none"}}
    await asyncio.to_thread(crs.create_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "emergencies", body)

    restarted = await runner_from_redis()  # the pod restarts: state from Redis
    assert restarted.engine is not None and "max_drawdown" in restarted.engine.halts
    watcher = asyncio.create_task(watch_kubernetes(
        k8s_namespace, restarted.apply_emergency, SystemClock(), k8s_api_client))

    async def acked(action: str) -> bool:
        raw = await redis_client.hget(keys.emergency_acks, "btc-sma")
        return bool(raw) and json.loads(raw or "{}")["action"] == action

    await wait_until(lambda: acked("none"), "the restarted runner to see the Emergency CR")
    assert "max_drawdown" in restarted.engine.halts, "a restart lifted the drawdown halt"
    summary = await redis_client.hgetall(keys.summary("btc-sma"))
    assert summary["phase"] == "Halted"
    # a person's stop then resume is the manual intervention that lifts it
    for action in ("stop", "none"):
        await asyncio.to_thread(crs.patch_namespaced_custom_object, GROUP, VERSION,
                                k8s_namespace, "emergencies", "default",
                                {"spec": {"action": action, "requestedBy": "ops"}})
        await wait_until(lambda a=action: acked(a), f"the runner to apply {action}")  # type: ignore[misc]
    assert not restarted.engine.is_halted
    watcher.cancel()


async def test_stale_none_on_the_resource_does_not_undo_a_stop_held_in_redis(
    redis_client: Redis, k8s_api_client: k8s.ApiClient, k8s_namespace: str,
    kubetrade_crds: Path,
) -> None:
    """A stop delivered through Redis while the Emergency resource still says none: the
    resource's none (the watch's first event) must not resume; the resume that reaches
    Redis does."""
    from kubetrade.runner.emergency import read_redis_emergency
    from kubetrade.state.desired import write_emergency

    keys = Keys("kt")
    crs = _crs(k8s_api_client)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Emergency",
            "metadata": {"name": "default"}, "spec": {"action": "none"}}
    await asyncio.to_thread(crs.create_namespaced_custom_object, GROUP, VERSION,
                            k8s_namespace, "emergencies", body)
    await write_emergency(redis_client, keys, "stop", "telegram:alice", "drill")
    runner = await make_runner(redis_client, keys)
    cmd = await read_redis_emergency(redis_client, keys)
    assert cmd is not None
    await runner.apply_emergency(cmd)  # what run_runner does at start
    assert runner.engine is not None and runner.engine.is_halted
    seen = asyncio.Event()

    async def handler(c: Any) -> None:
        await runner.apply_emergency(c)
        seen.set()

    watcher = asyncio.create_task(
        watch_kubernetes(k8s_namespace, handler, SystemClock(), k8s_api_client))
    await asyncio.wait_for(seen.wait(), 30)  # the resource's none was handled
    assert runner.engine.is_halted, "a stale none on the resource resumed a Redis stop"
    await write_emergency(redis_client, keys, "none", "telegram:alice", "")
    cmd = await read_redis_emergency(redis_client, keys)
    assert cmd is not None
    await runner.apply_emergency(cmd)
    assert not runner.engine.is_halted
    watcher.cancel()
