"""``kubetrade api``: the REST API, WebSocket and dashboard.

Desired state: in a cluster (in-cluster service account, or ``KUBECONFIG`` /
``--kubeconfig``) changes go to the custom resources; otherwise to the local store in
Redis (the same one ``kubetrade local`` uses). Without ``DASHBOARD_PASSWORD`` there is
no authentication, so the API refuses to listen anywhere but loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from kubetrade.cli._command import add_cluster_arguments, add_command, tcp_port
from kubetrade.cli._http import add_http_arguments, check_host, uvicorn_config

log = logging.getLogger("kubetrade.cli.api")

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "api", run, "serve the REST API, WebSocket and dashboard",
                    "Serve the REST API, the live WebSocket and the dashboard (default "
                    "port 8000). Env: REDIS_URL, KUBETRADE_REDIS_PREFIX, DASHBOARD_PASSWORD, "
                    "JWT_SECRET, CORS_ORIGINS, KUBECONFIG.")
    p.add_argument("--host", default=None,
                   help="address to bind (default 0.0.0.0 when DASHBOARD_PASSWORD is set, "
                   "else 127.0.0.1; without a password only loopback is allowed)")
    p.add_argument("--port", type=tcp_port, default=8000, help="port (default 8000)")
    add_cluster_arguments(
        p, (None, "namespace of the custom resources"), short=False,
        kubeconfig="kubeconfig (default $KUBECONFIG)",
        local="use the local desired state in Redis even when a cluster is reachable",
    )
    add_http_arguments(p)


def choose_host(requested: str | None, auth_enabled: bool,
                weak_password: str | None = None) -> str:
    """The bind address; raises ValueError when it would expose an unauthenticated API
    (and warns of a weak password on the network: :func:`check_host`)."""
    if requested is None:
        requested = "0.0.0.0" if auth_enabled else "127.0.0.1"  # noqa: S104 - with a password
    return check_host(requested, auth_enabled, "kubetrade api", weak_password)


def _namespace(arg: str | None) -> str:
    if arg:
        return arg
    for var in ("KUBETRADE_NAMESPACE", "POD_NAMESPACE"):
        if os.environ.get(var):
            return os.environ[var]
    if SA_NAMESPACE.exists():
        return SA_NAMESPACE.read_text().strip()
    return "default"


def _kubernetes_client(kubeconfig: str | None) -> Any:
    """An ApiClient when a cluster is configured, else None."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig:
        cfg = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return k8s.ApiClient(cfg)
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return k8s_config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    return None


async def _serve(args: argparse.Namespace, host: str) -> int:
    import uvicorn

    from kubetrade.api.app import create_app
    from kubetrade.api.settings import ApiSettings
    from kubetrade.domain.clock import SystemClock
    from kubetrade.resources.loader import strategy_with_defaults
    from kubetrade.state.client import DEFAULT_URL, connect
    from kubetrade.state.desired import DesiredState, LocalDesiredState
    from kubetrade.state.desired_k8s import KubernetesDesiredState
    from kubetrade.state.keys import keys_from_env

    settings = ApiSettings()
    clock = SystemClock()
    keys = keys_from_env()
    redis_url = os.environ.get("REDIS_URL", DEFAULT_URL)
    # A bounded pool: under a burst, requests queue for a connection instead of opening
    # one each until the process runs out of file descriptors.
    redis = connect(redis_url, max_connections=64, pool_timeout_s=10)
    api_client = None if args.local else _kubernetes_client(args.kubeconfig)
    desired: DesiredState
    if api_client is not None:
        namespace = _namespace(args.namespace)
        desired = KubernetesDesiredState(namespace, api_client, redis, keys, clock)
        log.info("desired state: custom resources in namespace %s", namespace)
    else:
        desired = LocalDesiredState(redis, keys, clock, check_strategy=strategy_with_defaults)
        log.info("desired state: local store in Redis (no cluster configured)")
    app = create_app(settings, redis, desired, clock, keys=keys)
    config = uvicorn_config(
        app, host=host, port=args.port, forwarded=args.forwarded_allow_ips,
        graceful_s=5,  # a stop must end even with WebSockets open
        log_level="info",
    )
    server = uvicorn.Server(config)
    log.info(
        "serving on http://%s:%d (%s)",
        host,
        args.port,
        "authentication required" if settings.auth_enabled else "NO authentication",
    )
    try:
        await server.serve()
    finally:
        await redis.aclose()
        if api_client is not None:
            api_client.close()
    return 0


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from kubetrade.api.settings import ApiSettings
    from kubetrade.logs import configure_logging

    configure_logging()  # JSON to stdout, secrets redacted (JWT_SECRET, password, keys)
    try:
        settings = ApiSettings()
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]).upper()
            print(f"kubetrade api: {field}: {err['msg']}", file=sys.stderr)
        return 2
    try:
        host = choose_host(args.host, settings.auth_enabled, settings.weak_password())
    except ValueError as exc:
        print(f"kubetrade api: {exc}", file=sys.stderr)
        return 2
    if not settings.auth_enabled:
        log.warning(
            "DASHBOARD_PASSWORD is not set: no authentication; listening on loopback %s only",
            host,
        )
    return asyncio.run(_serve(args, host))
