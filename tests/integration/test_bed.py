"""The test bed is real: Redis answers like Redis, the API server like Kubernetes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
import redis.asyncio as aioredis
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from tests.bed import Binaries, ControlPlane
from tests.bed.paths import REPO, RUN
from tests.bed.procs import reap_stale


async def test_redis_round_trip(redis_client: aioredis.Redis) -> None:
    await redis_client.set("bed:key", "value", ex=60)
    await redis_client.hset("bed:hash", mapping={"a": "1", "b": "2"})
    assert await redis_client.get("bed:key") == "value"
    assert await redis_client.hgetall("bed:hash") == {"a": "1", "b": "2"}
    assert 0 < await redis_client.ttl("bed:key") <= 60


async def test_redis_starts_empty(redis_client: aioredis.Redis) -> None:
    assert await redis_client.dbsize() == 0


async def test_redis_pubsub(redis_client: aioredis.Redis, redis_url: str) -> None:
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe("bed:events")
        # The subscribe confirmation means the server has registered us, so the
        # publish below cannot be lost.
        confirm = await pubsub.get_message(timeout=5)
        assert confirm is not None and confirm["type"] == "subscribe"
        publisher = aioredis.from_url(redis_url, decode_responses=True)
        try:
            assert await publisher.publish("bed:events", "halt") == 1
        finally:
            await publisher.aclose()
        message = await asyncio.wait_for(_next_message(pubsub), timeout=5)
    assert message == {"type": "message", "pattern": None, "channel": "bed:events", "data": "halt"}


async def _next_message(pubsub: aioredis.client.PubSub) -> dict[str, object]:
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if msg is not None:
            return dict(msg)


# --- Kubernetes -----------------------------------------------------------------

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.kubetrade.io
spec:
  group: test.kubetrade.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
                minReplicas: {type: integer}
                maxReplicas: {type: integer}
              x-kubernetes-validations:
                - rule: >-
                    !has(self.minReplicas) || !has(self.maxReplicas)
                    || self.minReplicas <= self.maxReplicas
                  message: minReplicas must not exceed maxReplicas
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"""


def _widget(name: str, namespace: str, **spec: object) -> dict[str, Any]:
    return {
        "apiVersion": "test.kubetrade.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def widget_crd(apiserver: ControlPlane) -> str:
    """The Widget CRD, applied with kubectl and Established."""
    apiserver.kubectl("apply", "-f", "-", input=WIDGET_CRD)
    apiserver.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.kubetrade.io", "--timeout=60s"
    )
    return "widgets.test.kubetrade.io"


@pytest.mark.k8s
def test_crd_applied_with_kubectl_is_servable(
    apiserver: ControlPlane, widget_crd: str, k8s_namespace: str
) -> None:
    created = apiserver.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-",
        input=json.dumps(_widget("w1", k8s_namespace, size=3)),
    )  # fmt: skip
    assert "widget.test.kubetrade.io/w1 created" in created.stdout
    got = apiserver.kubectl("get", "widgets", "-n", k8s_namespace, "-o", "json")
    items = json.loads(got.stdout)["items"]
    assert [(i["metadata"]["name"], i["spec"]["size"]) for i in items] == [("w1", 3)]


@pytest.mark.k8s
def test_schema_violation_refused_with_field_named(
    apiserver: ControlPlane, widget_crd: str, k8s_namespace: str
) -> None:
    bad = apiserver.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-",
        input=json.dumps(_widget("too-big", k8s_namespace, size=50)),
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr
    assert "should be less than or equal to 10" in bad.stderr

    cel = apiserver.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-",
        input=json.dumps(_widget("inverted", k8s_namespace, size=1, minReplicas=5, maxReplicas=2)),
        check=False,
    )  # fmt: skip
    assert cel.returncode != 0
    assert "minReplicas must not exceed maxReplicas" in cel.stderr
    assert "spec" in cel.stderr


@pytest.mark.k8s
def test_python_client_lists_watches_and_sees_validation(
    k8s_api_client: k8s.ApiClient, widget_crd: str, k8s_namespace: str
) -> None:
    api = k8s.CustomObjectsApi(k8s_api_client)
    args = ("test.kubetrade.io", "v1", k8s_namespace, "widgets")
    listed = cast(dict[str, Any], api.list_namespaced_custom_object(*args))
    assert listed["items"] == []

    api.create_namespaced_custom_object(*args, _widget("w2", k8s_namespace, size=2))
    watch = k8s_watch.Watch()  # type: ignore[no-untyped-call]
    seen: list[tuple[str, str]] = []
    events = watch.stream(  # type: ignore[no-untyped-call]
        api.list_namespaced_custom_object,
        *args,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=30,
    )
    for event in events:
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        watch.stop()  # type: ignore[no-untyped-call]
    assert seen == [("ADDED", "w2")]

    with pytest.raises(k8s.ApiException) as refused:
        api.create_namespaced_custom_object(*args, _widget("w3", k8s_namespace, size=0))
    assert refused.value.status == 422
    assert "spec.size" in json.loads(str(refused.value.body))["message"]


@pytest.mark.k8s
def test_kopf_operator_lists_and_watches(
    apiserver: ControlPlane, widget_crd: str, k8s_namespace: str
) -> None:
    registry = kopf.OperatorRegistry()
    seen: list[tuple[str | None, str]] = []
    got_event = threading.Event()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        info: kopf.ConnectionInfo = apiserver.kopf_connection(k8s_namespace)
        return info

    @kopf.on.event("test.kubetrade.io", "v1", "widgets", registry=registry)
    def on_event(type: str | None, name: str, **_: Any) -> None:
        seen.append((type, name))
        got_event.set()

    @kopf.on.create("test.kubetrade.io", "v1", "widgets", registry=registry, id="on_create")
    def on_create(spec: kopf.Spec, **_: Any) -> dict[str, object]:
        return {"doubled": spec["size"] * 2}

    # Made before the operator starts: kopf's initial list must report it.
    apiserver.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-",
        input=json.dumps(_widget("listed", k8s_namespace, size=4)),
    )  # fmt: skip
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            kopf.run(
                registry=registry,
                standalone=True,
                namespaces=[k8s_namespace],
                stop_flag=stop,
                ready_flag=ready,
            )
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    try:
        assert ready.wait(60), f"kopf did not start: {errors}"
        assert got_event.wait(30), f"kopf saw no event: {errors}"
        # Watch: an object made after start arrives as an event too.
        apiserver.kubectl(
            "apply", "-n", k8s_namespace, "-f", "-",
            input=json.dumps(_widget("watched", k8s_namespace, size=5)),
        )  # fmt: skip
        # The create handler's result lands in status: kopf patched through its client.
        _wait_for(
            lambda: (
                _status(apiserver, k8s_namespace, "watched").get("on_create") == {"doubled": 10}
            ),
            timeout=30,
            what="kopf to write status.on_create of 'watched'",
        )
        names = {name for _, name in seen}
        assert {"listed", "watched"} <= names
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "kopf did not stop on its stop flag"
    assert errors == []


def _status(apiserver: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = apiserver.kubectl("get", "widget", name, "-n", namespace, "-o", "json").stdout
    status: dict[str, Any] = json.loads(out).get("status", {})
    return status


def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.k8s
def test_rbac_applies_to_non_admin_users(apiserver: ControlPlane, k8s_namespace: str) -> None:
    viewer = apiserver.kubeconfig_for("alice", ["team-a"])
    denied = apiserver.kubectl("get", "pods", "-n", k8s_namespace, kubeconfig=viewer, check=False)
    assert denied.returncode != 0
    assert 'User "alice" cannot list resource "pods"' in denied.stderr

    # A Role of our own: the aggregated `view` ClusterRole is empty here, as the
    # controller-manager that aggregates it does not run.
    apiserver.kubectl(
        "create", "role", "pod-reader", "--verb=get,list", "--resource=pods",
        "-n", k8s_namespace,
    )  # fmt: skip
    apiserver.kubectl(
        "create", "rolebinding", "team-a-pods", "--role=pod-reader", "--group=team-a",
        "-n", k8s_namespace,
    )  # fmt: skip
    # The RBAC authorizer learns of the binding through a watch: wait for it.
    _wait_for(
        lambda: (
            apiserver.kubectl(
                "get", "pods", "-n", k8s_namespace, kubeconfig=viewer, check=False
            ).returncode
            == 0
        ),
        timeout=30,
        what="the rolebinding to let alice list pods",
    )
    # ...and only in that namespace.
    elsewhere = apiserver.kubectl("get", "pods", "-n", "default", kubeconfig=viewer, check=False)
    assert 'User "alice" cannot list resource "pods"' in elsewhere.stderr

    sa = apiserver.kubeconfig_for_service_account(k8s_namespace, "runner")
    whoami = apiserver.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa)
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{k8s_namespace}:runner"


@pytest.mark.k8s
def test_helm_is_built(kube_bin: Binaries) -> None:
    out = subprocess.run(
        [str(kube_bin.helm), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("v3.")


# --- Robustness to crashed runs --------------------------------------------------


def test_servers_die_with_a_killed_run_and_leftovers_are_reaped() -> None:
    up = subprocess.Popen(
        [sys.executable, "-m", "tests.bed", "up", "--redis-only"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert up.stdout is not None
        line = up.stdout.readline()  # blocks until the server answers PING
        assert line.startswith("export REDIS_URL=redis://127.0.0.1:"), line
        entries = [json.loads(p.read_text()) for p in RUN.glob(f"{up.pid}-*.json")]
        assert [e["name"] for e in entries] == ["redis"]
        redis_pid = int(entries[0]["pid"])
    finally:
        up.kill()  # a crash: no cleanup code runs
        up.wait()
    # The kernel kills the server with its parent (PR_SET_PDEATHSIG)...
    _wait_for(lambda: not _pid_alive(redis_pid), timeout=10, what="redis to die with its run")
    # ...and the next run removes the pidfile and work dir the crash left behind.
    reap_stale()
    assert list(RUN.glob(f"{up.pid}-*")) == []


def test_reaper_kills_a_stale_server_but_not_a_live_runs() -> None:
    gone = subprocess.Popen(["true"])  # its pid is that of an owner that died
    gone.wait()
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    live = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        RUN.mkdir(parents=True, exist_ok=True)
        stale = RUN / f"{gone.pid}-sleep-{orphan.pid}.json"
        stale.write_text(
            json.dumps({"name": "sleep", "pid": orphan.pid, "owner": gone.pid, "exe": "sleep"})
        )
        mine = RUN / f"{os.getpid()}-sleep-{live.pid}.json"
        mine.write_text(
            json.dumps({"name": "sleep", "pid": live.pid, "owner": os.getpid(), "exe": "sleep"})
        )
        reap_stale()
        assert orphan.wait(timeout=10) is not None
        assert not stale.exists()
        assert live.poll() is None and mine.exists()
    finally:
        for p in (orphan, live):
            p.kill()
            p.wait()
        mine.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
