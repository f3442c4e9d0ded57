"""The chart's pre-delete guard (issue 19 item 2), as `helm template` renders it.

The hook's ServiceAccount, Role and RoleBinding come before its Job (lower hook-weight),
all are pre-delete hooks cleaned up by Helm, the Role grants exactly the module's
HOOK_RULES, the Job runs `kubetrade operator --guard-uninstall` (with --force only when
forceUninstall=true) under the restricted Pod Security settings of the chart's other pods,
and uninstallGuard.enabled=false renders none of it. (tests/integration/chart dry-runs
every rendered pod, this Job's included, through the API server's `restricted` admission.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubetrade.operator.uninstall import HOOK_RULES
from tests.bed import Binaries

CHART = Path(__file__).resolve().parents[3] / "charts" / "kubetrade"
NAME = "kt-kubetrade-uninstall-guard"


def _render(kube_bin: Binaries, *sets: str) -> list[dict[str, Any]]:
    args = [str(kube_bin.helm), "template", "kt", str(CHART), "-n", "trading"]
    args += ["--kube-version", "1.34.0"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _hooks(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["kind"]: o
        for o in objects
        if o["metadata"]["name"] == NAME
        and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "pre-delete"
    }


def test_hook_objects_are_pre_delete_hooks_rbac_first(kube_bin: Binaries) -> None:
    hooks = _hooks(_render(kube_bin))
    assert set(hooks) == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    weight = {k: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for k, o in hooks.items()}
    assert max(weight["ServiceAccount"], weight["Role"], weight["RoleBinding"]) < weight["Job"]
    for obj in hooks.values():
        policy = obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
        assert {"before-hook-creation", "hook-succeeded"} <= set(policy)
    assert hooks["Role"]["rules"] == HOOK_RULES
    assert hooks["RoleBinding"]["roleRef"]["name"] == NAME
    assert hooks["RoleBinding"]["subjects"][0]["name"] == NAME


def test_hook_job_runs_the_guard_under_restricted_security(kube_bin: Binaries) -> None:
    job = _hooks(_render(kube_bin))["Job"]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0
    assert pod["serviceAccountName"] == NAME
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["args"] == ["operator", "--guard-uninstall", "--namespace", "trading"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # labelled like every kubetrade pod, so the namespace's NetworkPolicies (API server
    # egress) apply to it
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == (
        "kubetrade"
    )


def test_force_adds_the_flag_and_disabled_renders_nothing(kube_bin: Binaries) -> None:
    forced = _hooks(_render(kube_bin, "forceUninstall=true"))["Job"]
    args = forced["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-1] == "--force"
    assert _hooks(_render(kube_bin, "uninstallGuard.enabled=false")) == {}
