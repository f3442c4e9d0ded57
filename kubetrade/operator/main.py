"""Running the operator: its clients, the handler registry and Kopf's main loop
(``kubetrade operator`` calls :func:`run_operator`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubetrade.operator.clients import Clients, clients_of, memo_of
from kubetrade.operator.handlers import build_registry
from kubetrade.operator.kube import Kube, new_api_client
from kubetrade.operator.settings import OperatorSettings
from kubetrade.state.client import connect
from kubetrade.state.keys import Keys

StopFlag = asyncio.Event | threading.Event


def connection_from_kubeconfig(path: str) -> kopf.ConnectionInfo:
    """Kopf credentials from an explicit kubeconfig file (``--kubeconfig``)."""
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = [*header.split(" ", 1), ""][:2] if header else (None, None)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf's login: the ``--kubeconfig`` file when given, else the kubernetes client's
    own discovery (in-cluster service account or the default kubeconfig)."""
    kubeconfig = clients_of(memo).kubeconfig
    if kubeconfig:
        return connection_from_kubeconfig(kubeconfig)
    return kopf.login_via_client(memo=memo, **kwargs)


def make_clients(settings: OperatorSettings, kubeconfig: str | None = None) -> Clients:
    """The operator's clients (Redis only when ``settings.redis_url`` is set)."""
    redis = connect(settings.redis_url) if settings.redis_url else None
    return Clients(
        settings,
        Kube(new_api_client(kubeconfig)),
        redis,
        Keys(settings.redis_prefix),
        kubeconfig=kubeconfig,
    )


async def run_operator(
    settings: OperatorSettings,
    *,
    standalone: bool = True,
    liveness: str | None = None,
    kubeconfig: str | None = None,
    stop_flag: StopFlag | None = None,
    ready_flag: StopFlag | None = None,
) -> None:
    """Serve ``settings.namespace`` until stopped (SIGTERM/SIGINT or ``stop_flag``).

    ``standalone`` skips Kopf peering (one replica, Deployment strategy Recreate);
    without it, operators in the same namespace elect one active instance by priority.
    """
    clients = make_clients(settings, kubeconfig)
    registry = build_registry(settings)
    kopf.on.login(registry=registry)(login)
    try:
        await kopf.operator(
            registry=registry,
            memo=memo_of(clients),
            namespaces=[settings.namespace],
            standalone=standalone,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            clusterwide=False,
        )
    finally:
        await clients.close()
