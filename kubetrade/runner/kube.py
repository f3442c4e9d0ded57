"""Watching one custom resource from the runner (Strategy, RiskPolicy, Emergency).

The ``kubernetes`` client is synchronous, so the watch runs in a daemon thread and
hands objects to the event loop through a queue. A broken watch (apiserver restart,
timeout) is simply started again; the first event of each new watch is the current
object, so nothing is missed across a reconnect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

GROUP = "kubetrade.io"
VERSION = "v1alpha1"


async def watch_object(
    namespace: str, plural: str, name: str, api_client: Any | None = None
) -> AsyncIterator[dict[str, Any] | None]:
    """Yield the object each time it changes; ``None`` when it is deleted."""
    # kubernetes is imported where used here: ~1.5 s of start-up that the runners of
    # kubetrade local (no cluster) never need
    from kubernetes import client, watch

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    stop = threading.Event()

    def run() -> None:
        api = client.CustomObjectsApi(api_client)
        while not stop.is_set():
            w: Any = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                stream: Any = w.stream(
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=30,
                )
                for event in stream:
                    if stop.is_set():
                        break
                    obj = None if event.get("type") == "DELETED" else event.get("object")
                    loop.call_soon_threadsafe(queue.put_nowait, obj)
            except Exception:  # the apiserver may be briefly away; retry
                stop.wait(2.0)
            finally:
                w.stop()

    thread = threading.Thread(target=run, name=f"watch-{plural}-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            raise_if_cancelling()
            yield item
            raise_if_cancelling()
    finally:
        stop.set()


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that was swallowed on the way.

    On Python 3.11 ``asyncio.wait_for`` can lose a cancel that arrives as its inner
    call completes (fixed in 3.12); a watch loop that then goes back to waiting for the
    next event would never end, and a runner's shutdown would hang with it. The task
    still counts the request, so the loop checks it between events.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def load_kube_config() -> Any:
    """An ApiClient from the pod's service account, or ~/.kube/config / $KUBECONFIG."""
    from kubernetes import client, config  # in a cluster only (see watch_object)

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def get_object(namespace: str, plural: str, name: str, api_client: Any | None = None) -> Any:
    from kubernetes import client  # in a cluster only (see watch_object)

    api = client.CustomObjectsApi(api_client)
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
