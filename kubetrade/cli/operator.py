"""`kubetrade operator`: the Kopf operator for one namespace."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any


def _port(text: str) -> int:
    """A TCP port for --metrics-port / $METRICS_PORT (0 = off)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port (0-65535, 0 = off; from --metrics-port or $METRICS_PORT)")
    return port


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "operator",
        help="reconcile Strategy/RiskPolicy/Emergency/ValidationRun into runner pods",
        description="Turns kubetrade custom resources into runner Deployments and Jobs, "
        "mirrors the Emergency to Redis and folds runner summaries into Strategy status. "
        "Configured by environment: REDIS_URL, KUBETRADE_REDIS_PREFIX, KUBETRADE_RUNNER_IMAGE, "
        "KUBETRADE_RUNNER_SERVICE_ACCOUNT, KUBETRADE_JOB_SERVICE_ACCOUNT, "
        "KUBETRADE_RUNNER_RESOURCES (JSON), KUBETRADE_STATUS_INTERVAL (seconds), "
        "KUBETRADE_RUNNER_RBAC (per-strategy|shared), KUBETRADE_REDIS_SECRET (+_KEY: runners "
        "get REDIS_URL from that Secret), KUBETRADE_DELETE_TIMEOUT / KUBETRADE_DISABLE_TIMEOUT "
        "(seconds to wait for a runner to cancel orders), and KUBETRADE_EXCHANGE_URL, "
        "KUBETRADE_MARKET_DATA, KUBETRADE_REPLAY_INTERVAL, LOG_LEVEL passed on to runners.",
    )
    p.add_argument(
        "--namespace",
        "-n",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace to serve (default: $POD_NAMESPACE or 'default')",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no peering with other operator replicas (run exactly one)",
    )
    p.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    p.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: in-cluster or $KUBECONFIG)"
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        # a string default goes through _port only when the operator is run: a bad
        # METRICS_PORT must not break every other command's start (or --help)
        default=os.environ.get("METRICS_PORT") or "0",
        help="serve Prometheus /metrics on this port (default $METRICS_PORT; 0 = off)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log every handler call")
    p.add_argument(
        "--guard-uninstall",
        action="store_true",
        help="do not run the operator: the chart's pre-delete check (exit 1 while Strategies "
        "exist in the namespace; see kubetrade/operator/uninstall.py)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --guard-uninstall: set Emergency 'default' to stop and let the uninstall go on",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.guard_uninstall:
        from kubetrade.operator.uninstall import run

        return run(args.namespace, args.force, kubeconfig=args.kubeconfig)
    import kopf

    from kubetrade.operator.main import run_operator
    from kubetrade.operator.settings import OperatorSettings

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL)
    if not args.verbose:
        # every object's status timer succeeds every interval: not news
        logging.getLogger("kopf.objects").addFilter(_QuietTimers())
    logging.getLogger("kubetrade").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    settings = OperatorSettings.from_env(args.namespace)
    if args.metrics_port:
        from prometheus_client import start_http_server

        from kubetrade.operator.metrics import REGISTRY

        start_http_server(args.metrics_port, registry=REGISTRY)
    asyncio.run(
        run_operator(
            settings,
            standalone=args.standalone,
            liveness=args.liveness,
            kubeconfig=args.kubeconfig,
        )
    )
    return 0


class _QuietTimers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Timer '") and message.endswith("' succeeded."))
