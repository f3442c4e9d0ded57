"""Running the operator: clients, the handler registry and Kopf's main loop."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import kopf
import redis.asyncio as aioredis

from kubetrade.operator.handlers import Context, build_registry
from kubetrade.operator.kube import Kube, new_api_client
from kubetrade.operator.settings import OperatorSettings
from kubetrade.state.keys import Keys

StopFlag = asyncio.Event | threading.Event


def make_context(settings: OperatorSettings, kubeconfig: str | None = None) -> Context:
    redis = (
        aioredis.from_url(settings.redis_url, decode_responses=True) if settings.redis_url else None
    )
    return Context(settings, Kube(new_api_client(kubeconfig)), redis, Keys(settings.redis_prefix))


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
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    context = make_context(settings, kubeconfig)
    registry = build_registry(context)

    @kopf.on.login(registry=registry)  # type: ignore[arg-type]
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    try:
        await kopf.operator(
            registry=registry,
            namespaces=[settings.namespace],
            standalone=standalone,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            clusterwide=False,
        )
    finally:
        if context.redis is not None:
            await context.redis.aclose()
        context.kube.api.close()  # type: ignore[no-untyped-call]
