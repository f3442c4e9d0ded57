"""In a cluster the Telegram commands change the Emergency resource, like the API —
and /stop still works while Redis is down (the resource is the kill switch's path)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from kubernetes import client as k8s

from kubetrade.state.desired_k8s import KubernetesDesiredState
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram.server import free_port
from tests.integration.notify.conftest import GROUP, KEYS, OWNER, StartNotifier

GROUP_NAME, VERSION, PLURAL = "kubetrade.io", "v1alpha1", "emergencies"


def emergency_cr(api_client: k8s.ApiClient, namespace: str) -> dict[str, Any]:
    api: Any = k8s.CustomObjectsApi(api_client)
    obj: dict[str, Any] = api.get_namespaced_custom_object(
        GROUP_NAME, VERSION, namespace, PLURAL, "default"
    )
    return obj


async def test_stop_and_resume_write_the_emergency_resource(
    redis_client: aioredis.Redis,
    fake_telegram: FakeTelegram,
    start_notifier: StartNotifier,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Any,
) -> None:
    desired = KubernetesDesiredState(k8s_namespace, k8s_api_client, redis=redis_client, keys=KEYS)
    await start_notifier(desired=desired)

    await fake_telegram.deliver_command("/stop", GROUP, OWNER)
    await fake_telegram.wait_for_message(lambda m: "STOP engaged" in m.text, within=30)
    spec = (await asyncio.to_thread(emergency_cr, k8s_api_client, k8s_namespace))["spec"]
    assert spec["action"] == "stop" and spec["requestedBy"] == f"telegram:{OWNER}"
    assert (await redis_client.hgetall(KEYS.emergency))["action"] == "stop"  # mirrored

    await fake_telegram.deliver_command("/resume", GROUP, OWNER)
    await fake_telegram.wait_for_message(lambda m: "resumed" in m.text, within=30)
    spec = (await asyncio.to_thread(emergency_cr, k8s_api_client, k8s_namespace))["spec"]
    assert spec["action"] == "none"


async def test_stop_works_while_redis_is_down(
    fake_telegram: FakeTelegram,
    start_notifier: StartNotifier,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubetrade_crds: Any,
) -> None:
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True,
                             socket_connect_timeout=0.5)
    try:
        desired = KubernetesDesiredState(k8s_namespace, k8s_api_client, redis=dead, keys=KEYS)
        await start_notifier(desired=desired, redis=dead)
        await fake_telegram.deliver_command("/stop", GROUP, OWNER)
        await fake_telegram.wait_for_message(lambda m: "STOP engaged" in m.text, within=30)
        spec = (await asyncio.to_thread(emergency_cr, k8s_api_client, k8s_namespace))["spec"]
        assert spec["action"] == "stop"
        # /closeall too: the confirmation cannot count positions but still works
        await fake_telegram.deliver_command("/closeall", GROUP, OWNER)
        ask = await fake_telegram.wait_for_message(lambda m: "Close ALL open positions" in m.text,
                                                   within=30)
        await fake_telegram.press_button(ask, ask.buttons[0]["callback_data"], user_id=OWNER)
        await fake_telegram.wait_for(lambda: "CLOSE-ALL engaged" in ask.text, within=30)
        spec = (await asyncio.to_thread(emergency_cr, k8s_api_client, k8s_namespace))["spec"]
        assert spec["action"] == "close-all"
    finally:
        await dead.aclose()


async def test_kubetrade_notify_process_in_cluster_mode_patches_the_emergency(
    redis_url: str,
    fake_telegram: FakeTelegram,
    k8s_api_client: k8s.ApiClient,
    k8s_namespace: str,
    kubeconfig: str,
    kubetrade_crds: Any,
) -> None:
    import signal
    import sys

    from tests.integration.notify.test_cli import notify_env

    env = notify_env(redis_url, fake_telegram)
    env["KUBETRADE_NAMESPACE"] = k8s_namespace
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubetrade", "notify", "--kubeconfig", kubeconfig,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake_telegram.wait_polling(within=60)
        await fake_telegram.deliver_command("/stop", GROUP, OWNER)
        await fake_telegram.wait_for_message(lambda m: "STOP engaged" in m.text, within=30)
        spec = (await asyncio.to_thread(emergency_cr, k8s_api_client, k8s_namespace))["spec"]
        assert spec["action"] == "stop" and spec["requestedBy"] == f"telegram:{OWNER}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode()
    assert proc.returncode == 0, text[-2000:]
    assert f"the Emergency resource in namespace {k8s_namespace}" in text
