"""Helpers of the node tests: restricted namespaces, waiting on conditions, pod specs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from tests.bed import Node

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
