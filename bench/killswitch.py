"""Kill-switch latency and reconcile throughput of the operator, on the test bed.

1. N runners (default 20; paper, replaying the bundled BTC/USDT candles) are started
   the way the e2e test starts them: from the Deployments the operator rendered, as
   local processes with the pod's command and environment. Each trial patches
   ``Emergency/default`` (alternately ``stop`` and ``none``) and measures the time
   from the PATCH request until every runner has acknowledged the action in Redis
   (``keys.emergency_acks``; a runner acks after halting and cancelling its open
   orders). Prints p50/p99/max over the trials (default 20) and the number of open
   orders left after each stop (must be 0).
2. The time for the operator to reconcile M Strategies (default 200) into
   Deployments: applied while the operator runs, and again with the operator started
   after they exist (the restart path).

Run: ``.venv/bin/python bench/killswitch.py [--runners 20] [--trials 20] [--strategies 200]``
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from kubetrade.domain.models import OrderStatus  # noqa: E402
from kubetrade.exchange.replay import bundled_candles  # noqa: E402
from kubetrade.state.keys import Keys  # noqa: E402
from tests.bed import Bed, ControlPlane  # noqa: E402
from tests.fixtures.kubetrade_operator import Kubelet, OperatorBed, wait_for  # noqa: E402

GROUP, VERSION = "kubetrade.io", "v1alpha1"
TERMINAL = {s.value for s in OrderStatus if s.is_terminal}


def strategy(name: str, fast: int = 2, slow: int = 4) -> str:
    return (
        f"apiVersion: {GROUP}/{VERSION}\nkind: Strategy\nmetadata: {{name: {name}}}\n"
        f"spec: {{algorithm: sma-crossover, parameters: {{fastPeriod: {fast}, "
        f"slowPeriod: {slow}}}, symbols: [BTC/USDT]}}\n"
    )


BASE = (
    f"apiVersion: {GROUP}/{VERSION}\nkind: RiskPolicy\nmetadata: {{name: default}}\n"
    "spec: {strategyMaxConsecutiveLosses: 0}\n---\n"
    f"apiVersion: {GROUP}/{VERSION}\nkind: Emergency\nmetadata: {{name: default}}\n"
)


def admin_client(cp: ControlPlane) -> Any:
    return k8s_config.new_client_from_config(str(cp.kubeconfig))  # type: ignore[no-untyped-call]


def new_namespace(cp: ControlPlane, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    return ns


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def killswitch(cp: ControlPlane, redis_url: str, workdir: Path, runners: int, trials: int) -> None:
    ns = new_namespace(cp, "bench-kill")
    bed = OperatorBed(cp, ns, redis_url, workdir)
    csv = bundled_candles("BTC/USDT")
    bed.start(
        KUBETRADE_MARKET_DATA=f"replay:{csv}",
        KUBETRADE_REPLAY_INTERVAL="1",
        KUBETRADE_STATUS_INTERVAL="5",
        LOG_LEVEL="WARNING",
    )
    kubelet = Kubelet(bed, workdir)
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(bed.prefix)
    names = [f"r{i:02d}" for i in range(runners)]
    try:
        bed.apply(BASE + "---\n" + "---\n".join(strategy(n) for n in names))
        deps = wait_for(
            lambda: (d := bed.items("deployments")) and len(d) == runners and d,
            120,
            f"{runners} Deployments",
        )
        for d in deps:
            kubelet.run(d)
        started = time.monotonic()
        wait_for(lambda: all(r.exists(keys.summary(n)) for n in names), 300, "every runner trading")
        # each runner acks the state it found at start; wait for all of them
        wait_for(lambda: r.hlen(keys.emergency_acks) >= runners, 120, "start-up acks")
        print(f"{runners} runners up in {time.monotonic() - started:.1f}s")

        api = k8s.CustomObjectsApi(admin_client(cp))
        latencies: list[float] = []
        left_open: list[int] = []
        for trial in range(trials):
            action = "stop" if trial % 2 == 0 else "none"
            t0 = time.perf_counter()
            api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "emergencies",
                "default",
                {"spec": {"action": action, "reason": f"bench {trial}", "requestedBy": "bench"}},
            )
            deadline = t0 + 30
            while True:
                acks = r.hgetall(keys.emergency_acks)
                done = sum(
                    1 for n in names if json.loads(acks.get(n, "{}")).get("action") == action
                )
                if done == runners:
                    break
                if time.perf_counter() > deadline:
                    raise SystemExit(f"trial {trial}: only {done}/{runners} acked {action}")
                time.sleep(0.001)
            latencies.append((time.perf_counter() - t0) * 1000)
            if action == "stop":
                open_orders = 0
                for n in names:
                    for text in r.hvals(keys.orders(n)):
                        if json.loads(text).get("status") not in TERMINAL:
                            open_orders += 1
                left_open.append(open_orders)
            time.sleep(0.3)
        print(
            f"kill switch, {runners} runners, {trials} trials (Emergency PATCH -> all acks): "
            f"p50={pct(latencies, 50):.0f} ms p99={pct(latencies, 99):.0f} ms "
            f"max={max(latencies):.0f} ms min={min(latencies):.0f} ms"
        )
        print(f"open orders left after each stop: {left_open}")
    finally:
        kubelet.stop()
        bed.stop()


def reconcile(
    cp: ControlPlane, redis_url: str, workdir: Path, count: int, runner_rbac: str
) -> None:
    names = [f"s{i:03d}" for i in range(count)]
    manifest = BASE + "---\n" + "---\n".join(strategy(n) for n in names)
    # BASE is applied again with the Strategies: unchanged objects, no extra work.
    api = k8s.CustomObjectsApi(admin_client(cp))

    def converged(ns: str) -> bool:
        found: Any = api.list_namespaced_custom_object(GROUP, VERSION, ns, "strategies")
        items: list[dict[str, Any]] = found["items"]
        return len(items) == count and all(
            (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"]
            and (s.get("status") or {}).get("deployment")
            for s in items
        )

    for mode in ("applied while running", "operator started after"):
        ns = new_namespace(cp, "bench-rec")
        bed = OperatorBed(cp, ns, redis_url, workdir)
        try:
            if mode == "operator started after":
                bed.apply(manifest)
                t0 = time.perf_counter()
                bed.start(
                    LOG_LEVEL="WARNING",
                    KUBETRADE_STATUS_INTERVAL="10",
                    KUBETRADE_RUNNER_RBAC=runner_rbac,
                )
            else:
                bed.start(
                    LOG_LEVEL="WARNING",
                    KUBETRADE_STATUS_INTERVAL="10",
                    KUBETRADE_RUNNER_RBAC=runner_rbac,
                )
                bed.apply(BASE)
                connected = bed  # the operator is connected once it reported on the RiskPolicy
                wait_for(lambda: connected.condition("riskpolicy", "default", "Ready"), 60, "op")  # noqa: B023
                t0 = time.perf_counter()
                bed.apply(manifest)
            wait_for(lambda: converged(ns), 600, f"{count} Strategies reconciled")  # noqa: B023
            took = time.perf_counter() - t0
            deployments = len(bed.items("deployments"))
            print(
                f"reconcile {count} Strategies ({mode}, {runner_rbac} runner RBAC): {took:.1f}s "
                f"({count / took:.1f}/s), Deployments: {deployments}"
            )
        finally:
            bed.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--strategies", type=int, default=200)
    parser.add_argument("--skip-killswitch", action="store_true")
    parser.add_argument("--skip-reconcile", action="store_true")
    parser.add_argument(
        "--runner-rbac",
        choices=["per-strategy", "shared"],
        action="append",
        help="runner identity mode(s) to time reconciling with (default: both)",
    )
    args = parser.parse_args(argv)
    bed = Bed()
    try:
        cp = bed.control_plane()
        redis_url = bed.redis().url
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        with tempfile.TemporaryDirectory(prefix="kt-bench-") as tmp:
            if not args.skip_killswitch:
                killswitch(cp, redis_url, Path(tmp), args.runners, args.trials)
            if not args.skip_reconcile:
                for mode in args.runner_rbac or ["per-strategy", "shared"]:
                    reconcile(cp, redis_url, Path(tmp), args.strategies, mode)
    finally:
        bed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
