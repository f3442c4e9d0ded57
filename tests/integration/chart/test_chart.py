"""The Helm chart against the test bed's real API server.

What a cluster user relies on: the chart lints, renders objects the API server accepts,
installs, every pod it (or the operator) creates meets the `restricted` Pod Security
level, bad values are refused with the value's name, and the CRDs it ships are the ones
generated from the models.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bed import Binaries, ControlPlane

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubetrade"
RELEASE = "kt"
# helm built from source defaults `template` to Kubernetes v1.20; say which cluster we target.
KUBE_VERSION = "1.34.0"


def helm(
    kube_bin: Binaries, *args: str, kubeconfig: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(kube_bin.helm), *args]
    if kubeconfig:
        cmd.append(f"--kubeconfig={kubeconfig}")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def render(kube_bin: Binaries, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = [
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
    ]
    for s in sets:
        args += ["--set", s]
    out = helm(kube_bin, *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        kind = obj["kind"]
        if kind in {"Deployment", "StatefulSet", "Job"}:
            template = obj["spec"]["template"]
            spec = dict(template["spec"])
            if kind == "StatefulSet":
                claims = obj["spec"].get("volumeClaimTemplates", [])
                spec["volumes"] = [*spec.get("volumes", [])] + [
                    {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": "x"}}
                    for c in claims
                ]
            yield f"{kind}/{obj['metadata']['name']}", spec


def dry_run_pod(
    apiserver: ControlPlane, namespace: str, name: str, spec: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Ask the API server (admission included, Pod Security among it) about a Pod."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-check"}, "spec": spec}
    return apiserver.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(pod),
        check=False,
    )


@pytest.fixture
def restricted_namespace(apiserver: ControlPlane) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    apiserver.kubectl("create", "namespace", name)
    apiserver.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    apiserver.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def crds_installed(apiserver: ControlPlane) -> None:
    apiserver.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    apiserver.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART / "crds")
    )


def test_chart_crds_are_the_generated_ones() -> None:
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    shipped = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert generated and shipped == generated
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text(), name


def test_helm_lint_is_clean(kube_bin: Binaries) -> None:
    out = helm(kube_bin, "lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("operator.replicas=2", "/operator/replicas"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("redis.enabled=false", "/redis"),
        ("api.corsOrigins[0]=*", "/api/corsOrigins/0"),
        ("api.forwardedAllowIps=the-ingress", "/api/forwardedAllowIps"),
        ("api.forwardedAllowIps=10.244.0.0/33", "/api/forwardedAllowIps"),
        ("api.forwardedAllowIps=999.1.1.1", "/api/forwardedAllowIps"),
        ("redisPrefix=has space", "/redisPrefix"),
        ("notify.enabled=true", "/notify"),
        # the default RiskPolicy, refused before anything is applied: a value out of the
        # CRD's range, and a misspelt field the API server would prune without a word
        ("defaults.riskPolicy.spec.stopLossPct=-1", "/defaults/riskPolicy/spec/stopLossPct"),
        ("defaults.riskPolicy.spec.maxPositionSizePct=0",
         "/defaults/riskPolicy/spec/maxPositionSizePct"),
        ("defaults.riskPolicy.spec.stoplossPct=2", "'stoplossPct' not allowed"),
    ],
)
def test_bad_values_fail_naming_the_value(kube_bin: Binaries, value: str, named: str) -> None:
    out = helm(kube_bin, "template", RELEASE, str(CHART), "--set", value)
    assert out.returncode != 0
    assert named in out.stderr, out.stderr


def test_trusted_proxies_reach_the_api_command_only_when_set(kube_bin: Binaries) -> None:
    """Behind an Ingress the login throttle needs the client's address from the proxy's
    X-Forwarded-For, trusted from the configured proxies only (never by default)."""

    def api_args(*sets: str) -> list[str]:
        api = next(o for o in render(kube_bin, "kt", *sets)
                   if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api"))
        args: list[str] = api["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    assert "--forwarded-allow-ips" not in api_args()
    args = api_args("api.forwardedAllowIps=10.244.0.0/16\\,10.0.0.5\\,fd00::/8")
    assert args[args.index("--forwarded-allow-ips") + 1] == "10.244.0.0/16,10.0.0.5,fd00::/8"


def test_without_a_password_one_is_generated_so_the_api_can_serve(kube_bin: Binaries) -> None:
    """`kubetrade api --host 0.0.0.0` refuses to serve without DASHBOARD_PASSWORD (no
    unauthenticated API on a pod address), so a chart installed without one must not
    hand it an empty one: its API pod would crash-loop. A given password is kept."""

    def password(*sets: str) -> str:
        secret = next(o for o in render(kube_bin, "kt", *sets) if o["kind"] == "Secret"
                      and "dashboard-password" in (o.get("data") or {}))
        return base64.b64decode(secret["data"]["dashboard-password"]).decode()

    generated = password()
    assert len(generated) == 24 and generated.isalnum()
    assert password("api.auth.dashboardPassword=Corr3ct-Horse") == "Corr3ct-Horse"


def test_notes_never_print_secrets(
    kube_bin: Binaries, apiserver: ControlPlane, crds_installed: None
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    token = f"123456:{uuid.uuid4().hex}"
    out = helm(
        kube_bin,
        "install",
        "notes-check",
        str(CHART),
        "--dry-run=server",
        "--set",
        "admissionPolicies.enabled=false",
        "--namespace",
        "default",
        "--set",
        f"api.auth.dashboardPassword={password}",
        "--set",
        "notify.enabled=true",
        "--set",
        f"notify.botToken={token}",
        "--set",
        "notify.chatId=42",
        kubeconfig=str(apiserver.kubeconfig),
    )
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "port-forward" in notes and "kubectl" in notes
    assert password not in notes and token not in notes


def test_rendered_objects_are_accepted_by_the_api_server(
    kube_bin: Binaries, apiserver: ControlPlane, crds_installed: None, restricted_namespace: str
) -> None:
    rendered = helm(
        kube_bin,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        restricted_namespace,
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "notify.enabled=true",
        "--set",
        "notify.botToken=x:y",
        "--set",
        "notify.chatId=1",
        "--set",
        "api.ingress.enabled=true",
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    # monitoring.coreos.com kinds need the Prometheus operator's CRDs, absent here
    docs = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com")]
    out = apiserver.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        restricted_namespace,
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr


def test_every_pod_meets_the_restricted_level(
    kube_bin: Binaries, apiserver: ControlPlane, restricted_namespace: str
) -> None:
    objects = render(
        kube_bin,
        restricted_namespace,
        "notify.enabled=true",
        "notify.botToken=x:y",
        "notify.chatId=1",
    )
    templates = list(pod_templates(objects))
    assert {name.split("/")[0] for name, _ in templates} >= {"Deployment", "StatefulSet"}
    for name, spec in templates:
        out = dry_run_pod(apiserver, restricted_namespace, name.split("/")[1][:50], spec)
        assert out.returncode == 0, f"{name}: {out.stderr}"


def test_a_privileged_pod_is_refused_by_the_restricted_namespace(
    apiserver: ControlPlane, restricted_namespace: str
) -> None:
    """The PSS check above could not fail if enforcement were off; prove it is on."""
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    out = dry_run_pod(apiserver, restricted_namespace, "root", spec)
    assert out.returncode != 0
    assert "restricted" in out.stderr


def test_helm_install_creates_the_components(
    kube_bin: Binaries, apiserver: ControlPlane, crds_installed: None, restricted_namespace: str
) -> None:
    out = helm(
        kube_bin,
        "install",
        RELEASE,
        str(CHART),
        "--set",
        "admissionPolicies.enabled=false",
        "--namespace",
        restricted_namespace,
        "--set",
        "api.auth.dashboardPassword=s3cret-for-test",
        kubeconfig=str(apiserver.kubeconfig),
    )
    assert out.returncode == 0, out.stderr
    got = apiserver.kubectl(
        "get",
        "deployments,statefulsets,services,emergencies,riskpolicies,roles,serviceaccounts",
        "-n",
        restricted_namespace,
        "-o",
        "name",
    ).stdout.split()
    for expected in [
        f"deployment.apps/{RELEASE}-kubetrade-operator",
        f"deployment.apps/{RELEASE}-kubetrade-api",
        f"statefulset.apps/{RELEASE}-kubetrade-redis",
        f"service/{RELEASE}-kubetrade-redis",
        "emergency.kubetrade.io/default",
        "riskpolicy.kubetrade.io/default",
        f"serviceaccount/{RELEASE}-kubetrade-operator",
    ]:
        assert expected in got, (expected, got)
    secret = apiserver.kubectl(
        "get", "secret", f"{RELEASE}-kubetrade-api", "-n", restricted_namespace, "-o", "yaml"
    ).stdout
    assert "s3cret-for-test" not in secret  # base64 in the object, never plain


STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: btc-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
  exchange: {name: binance, testnet: true}
  riskPolicyRef: default
  enabled: true
"""


def test_installed_operator_reconciles_a_strategy_with_the_charts_rbac(
    kube_bin: Binaries,
    apiserver: ControlPlane,
    crds_installed: None,
    restricted_namespace: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The operator, authenticated as the chart's operator ServiceAccount (so only the
    chart's RBAC applies), turns a Strategy applied after install into its runner
    Deployment, and that runner's pod meets the namespace's `restricted` level."""
    import json
    import os
    import sys
    import time

    from kubetrade.operator.render import runner_name

    ns = restricted_namespace
    out = helm(
        kube_bin,
        "install",
        RELEASE,
        str(CHART),
        "--set",
        "admissionPolicies.enabled=false",
        "--namespace",
        ns,
        kubeconfig=str(apiserver.kubeconfig),
    )
    assert out.returncode == 0, out.stderr
    operator = next(
        d
        for d in render(kube_bin, ns)
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    pod = operator["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(REDIS_URL=redis_url, KUBETRADE_REDIS_PREFIX=f"chart{uuid.uuid4().hex[:6]}")
    sa_config = apiserver.kubeconfig_for_service_account(ns, pod["serviceAccountName"])
    args = [a for a in container["args"] if not a.startswith("http")]
    args = [a for a in args if a != "--liveness"]
    log = (tmp_path / "operator.log").open("wb")
    environ = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetrade", *args, "--kubeconfig", str(sa_config)],
        env={**environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        apiserver.kubectl("apply", "-n", ns, "-f", "-", input=STRATEGY)
        deadline = time.monotonic() + 90
        deployment = None
        while time.monotonic() < deadline and proc.poll() is None:
            got = apiserver.kubectl(
                "get", "deployment", runner_name("btc-sma"), "-n", ns, "-o", "json", check=False
            )
            if got.returncode == 0:
                deployment = json.loads(got.stdout)
                break
            time.sleep(0.5)
        assert deployment is not None, (tmp_path / "operator.log").read_text()[-3000:]
        # a per-strategy identity, created by the operator with the chart's RBAC
        runner_sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        apiserver.kubectl("get", "serviceaccount", runner_sa, "-n", ns)
        checked = dry_run_pod(apiserver, ns, "runner", deployment["spec"]["template"]["spec"])
        assert checked.returncode == 0, checked.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
