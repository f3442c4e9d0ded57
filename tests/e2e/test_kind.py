"""The e2e path on a real cluster with kubelets (kind), run by `make e2e-kind`.

The test bed has no kubelet, so there the e2e tests start rendered pods as local
processes; on kind the chart's own pods run from the image. Without a kind cluster
(KUBETRADE_E2E_KUBECONFIG unset, as `scripts/e2e-kind.sh` sets it) these skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

KUBECONFIG = os.environ.get("KUBETRADE_E2E_KUBECONFIG")
NAMESPACE = os.environ.get("KUBETRADE_E2E_NAMESPACE", "kubetrade-e2e")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(
        KUBECONFIG is None,
        reason="no kind cluster: `make e2e-kind` creates one where Docker runs (none here)",
    ),
]


def kubectl(*args: str, input: str | None = None) -> str:
    exe = shutil.which("kubectl") or str(ROOT / ".cache" / "bin" / "kubectl")
    out = subprocess.run(
        [exe, f"--kubeconfig={KUBECONFIG}", "-n", NAMESPACE, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def test_strategy_runs_as_a_pod_and_the_kill_switch_halts_it() -> None:
    kubectl("apply", "-f", str(ROOT / "examples" / "strategies" / "btc-sma.yaml"))
    wait_until(
        lambda: (
            "Running"
            in kubectl(
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/component=runner",
                "-o",
                "jsonpath={.items[*].status.phase}",
            )
        ),
        300,
        "the btc-sma runner pod to run",
    )
    kubectl("patch", "emergency", "default", "--type", "merge", "-p", '{"spec":{"action":"stop"}}')

    def acknowledged() -> bool:
        status = json.loads(kubectl("get", "emergency", "default", "-o", "json")).get("status", {})
        return int(status.get("acknowledged") or 0) >= 1

    wait_until(acknowledged, 120, "the runner to acknowledge the stop")
    kubectl("patch", "emergency", "default", "--type", "merge", "-p", '{"spec":{"action":"none"}}')
