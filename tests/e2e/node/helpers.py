"""Helpers of the node tests: restricted namespaces, waiting on conditions, pod specs."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import redis

from tests.bed import BedError, Node

T = TypeVar("T")

# What the `restricted` Pod Security Standard asks of every container.
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
             on_timeout: Callable[[], str] = lambda: "") -> T:  # fmt: skip
    """Poll `check` (every 0.5 s) until it returns something truthy; AssertionError
    naming `what` (and whatever `on_timeout` tells) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}"
            )
        time.sleep(0.5)


def restricted_namespace(node: Node, prefix: str = "kt") -> str:
    """A fresh namespace whose Pod Security admission enforces `restricted`."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    node.kubectl("create", "namespace", name)
    node.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    return name


def get(node: Node, ns: str, *what: str) -> dict[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    out = node.kubectl("-n", ns, "get", *what, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def pod_phase(node: Node, ns: str, name: str) -> str:
    pod = get(node, ns, "pod", name)
    return str(pod["status"].get("phase", "")) if pod else ""


def describe(node: Node, ns: str) -> str:
    """Pods, events and the node's logs of a namespace, for a failing test."""
    pods = node.kubectl("-n", ns, "get", "pods", "-o", "wide", check=False).stdout
    events = node.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp",
                          check=False).stdout  # fmt: skip
    return f"{pods}\n{events[-4000:]}\n{node.logs()}"


def run_pod(node: Node, ns: str, name: str, image: str, command: list[str],
            timeout: float = 120) -> str:  # fmt: skip
    """Run a one-shot restricted pod to completion; its logs. Fails on phase Failed."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "Never",
                "command": command, "securityContext": RESTRICTED,
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
            }],
        },
    }  # fmt: skip
    node.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(pod))
    phase = wait_for(
        lambda: (p := pod_phase(node, ns, name)) in ("Succeeded", "Failed") and p,
        timeout, f"pod {name} to finish", lambda: describe(node, ns),
    )  # fmt: skip
    logs = node.kubectl("-n", ns, "logs", name, check=False).stdout
    assert phase == "Succeeded", f"pod {name} {phase}:\n{logs}\n{describe(node, ns)}"
    return logs


ROOT = Path(__file__).resolve().parents[3]
RELEASE = "kubetrade"


def ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


class Release:
    """One `helm install` of the chart in a restricted namespace of its own."""

    def __init__(self, node: Node, prefix: str = "kubetrade") -> None:
        self.node = node
        self.ns = restricted_namespace(node, prefix)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.node.kubectl("-n", self.ns, *args, input=input, check=check).stdout

    def get(self, *what: str) -> dict[str, Any] | None:
        return get(self.node, self.ns, *what)

    def why(self) -> str:
        return describe(self.node, self.ns)

    def redis(self) -> Any:
        """A client on the release's Redis pod (the host reaches the pod network)."""
        ip = self.kubectl("get", "pod", f"{RELEASE}-redis-0", "-o", "jsonpath={.status.podIP}")
        return redis.Redis(host=ip, port=6379, decode_responses=True, socket_timeout=10)

    def runner_pods(self, strategy: str) -> list[dict[str, Any]]:
        pods = self.get("pods", "-l", "app.kubernetes.io/component=runner")
        items = (pods or {}).get("items", [])
        return [p for p in items if strategy in p["metadata"]["name"]]


@contextlib.contextmanager
def installed(node: Node, operator_env: dict[str, str], prefix: str) -> Iterator[Release]:
    """`helm install` of the chart with its defaults plus what the README tells users to
    set (the dashboard password), the images built here and `operator_env` (passed to
    the operator, which hands KUBETRADE_* settings on to runner and Job pods); on exit
    `helm uninstall --no-hooks` (a failed test may leave Strategies, which the uninstall
    guard would refuse) and the namespace deleted."""
    rel = Release(node, prefix)
    images = node.images
    node.hostpath_volume(f"{rel.ns}-redis")
    env: list[str] = []
    for i, (name, value) in enumerate(sorted(operator_env.items())):
        env += ["--set", f"operator.extraEnv[{i}].name={name}",
                "--set-string", f"operator.extraEnv[{i}].value={value}"]  # fmt: skip
    node.helm(
        "install", RELEASE, str(ROOT / "charts" / "kubetrade"), "-n", rel.ns,
        "--set", "api.auth.dashboardPassword=e2e-node-password",
        "--set", f"image.repository={images.project.repository}",
        "--set", f"image.tag={images.project.tag}",
        "--set", f"redis.image.repository={images.redis.repository}",
        "--set", f"redis.image.tag={images.redis.tag}",
        *env, "--wait", "--timeout", "5m",
    )  # fmt: skip
    try:
        yield rel
    finally:
        with contextlib.suppress(BedError):
            node.helm("uninstall", RELEASE, "-n", rel.ns, "--wait", "--ignore-not-found",
                      "--no-hooks")  # fmt: skip
        node.kubectl("delete", "namespace", rel.ns, "--wait=false", check=False)
