"""What the operator renders: the runner pod users and auditors rely on."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from kubetrade.operator import admission, rbac, render, render_validation
from kubetrade.operator.settings import OperatorSettings
from kubetrade.operator.status import Conditions, fold_summary
from kubetrade.resources import Strategy, ValidationRun
from tests.unit.operator.builders import strategy

SETTINGS = OperatorSettings(
    namespace="trading", image="registry.example/kubetrade:1.2.3", redis_url="redis://r:6379/0"
)


def deployment(s: Strategy, replicas: int = 1) -> dict[str, Any]:
    return render.runner_deployment(s, "uid-1", replicas, SETTINGS)


def test_runner_deployment_shape() -> None:
    d = deployment(strategy())
    assert d["metadata"]["name"] == "kubetrade-runner-btc-sma"
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    owner = d["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Strategy" and owner["uid"] == "uid-1" and owner["controller"]
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == [
        "kubetrade",
        "runner",
        "--strategy",
        "btc-sma",
        "--namespace",
        "trading",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["REDIS_URL"]["value"] == "redis://r:6379/0"
    assert env["BINANCE_TESTNET"]["value"] == "true"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {"KUBETRADE_REDIS_PREFIX", "METRICS_PORT"} <= set(env)
    assert c["resources"]["limits"] and c["resources"]["requests"]
    assert (
        d["spec"]["selector"]["matchLabels"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    )


def test_restricted_security_context() -> None:
    pod = deployment(strategy())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # a read-only root needs a writable /tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]


def test_exchange_keys_only_as_secret_volume() -> None:
    d = deployment(strategy())
    pod = d["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if "secret" in v)
    assert vol["secret"]["secretName"] == "binance-keys"
    assert {i["key"] for i in vol["secret"]["items"]} == {"apiKey", "secretKey"}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == vol["name"])
    assert mount == {
        "name": vol["name"],
        "mountPath": "/var/run/secrets/kubetrade/exchange",
        "readOnly": True,
    }
    text = yaml.safe_dump(d)
    assert "secretKeyRef" not in text and "BINANCE_API_KEY" not in text
    no_secret = deployment(strategy(exchange={"testnet": True}))["spec"]["template"]["spec"]
    assert all("secret" not in v for v in no_secret["volumes"])


def test_config_hash_rolls_only_for_changes_the_runner_cannot_take_live() -> None:
    base = render.config_hash(strategy(), SETTINGS)
    assert render.config_hash(strategy(enabled=False), SETTINGS) == base
    assert render.config_hash(strategy(closePositionsOnDelete=True), SETTINGS) == base
    for change in (
        {"parameters": {"fastPeriod": 5, "slowPeriod": 30}},
        {"symbols": ["ETH/USDT"]},
        {"timeframe": "5m"},
        {"riskPolicyRef": "tight"},
        {"mode": "live"},
    ):
        assert render.config_hash(strategy(**change), SETTINGS) != base, change
    d = deployment(strategy())
    assert d["spec"]["template"]["metadata"]["annotations"][render.CONFIG_HASH] == base
    assert deployment(strategy(), replicas=0)["spec"]["template"] == d["spec"]["template"]


def test_preflight_job_is_named_after_the_config() -> None:
    s = strategy(mode="live")
    chash = render.config_hash(s, SETTINGS)
    job = render.preflight_job(s, "uid-1", chash, SETTINGS)
    assert job["metadata"]["name"] == f"preflight-btc-sma-{chash[:8]}"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == [
        "kubetrade",
        "preflight",
        "--strategy",
        "btc-sma",
        "--namespace",
        "trading",
    ]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # a node drain that evicts the check is not a failed check: it runs again
    assert job["spec"]["podFailurePolicy"] == {"rules": [{
        "action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                 "status": "True"}]}]}


def test_validation_job_args_and_no_keys() -> None:
    run = ValidationRun.model_validate(
        {
            "metadata": {"name": "v1", "namespace": "trading"},
            "spec": {"strategyRef": "btc-sma", "duration": "1d12h"},
        }
    )
    job = render_validation.validation_job(run, "uid-2", SETTINGS)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == [
        "kubetrade",
        "validate",
        "--strategy",
        "btc-sma",
        "--namespace",
        "trading",
        "--validation-run",
        "v1",
        "--duration",
        "1d12h",
    ]
    assert job["spec"]["activeDeadlineSeconds"] == 129600 + 3600
    assert "secret" not in yaml.safe_dump(job["spec"]["template"]["spec"]["volumes"])
    replay = run.model_copy(
        update={"spec": run.spec.model_copy(update={"replay": "/data/btc.csv"})}
    )
    args = render_validation.validation_job(replay, "uid-2", SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    assert args[-2:] == ["--replay", "/data/btc.csv"]


def test_jobs_get_the_job_resources_and_runners_the_runners() -> None:
    """A replay holds its candles in memory (~230 MiB for a million): the Jobs have
    their own resources (the chart's ``jobs.resources``), not the runner's 256Mi."""
    settings = OperatorSettings.from_env("trading", {
        "KUBETRADE_RUNNER_RESOURCES": '{"limits": {"memory": "200Mi"}}',
        "KUBETRADE_JOB_RESOURCES": '{"limits": {"memory": "2Gi"}}'})
    run = ValidationRun.model_validate({
        "metadata": {"name": "v1", "namespace": "trading"},
        "spec": {"strategyRef": "btc-sma", "replay": "store",
                 "storeRange": {"since": "2024-01-01", "download": True}}})
    pod = render_validation.validation_job(run, "uid-2", settings, ("BTC/USDT", "1m"))[
        "spec"]["template"]["spec"]
    preflight = render.preflight_job(strategy(), "uid-1", "abc", settings)
    for c in [*pod["containers"], *pod["initContainers"],
              *preflight["spec"]["template"]["spec"]["containers"]]:
        assert c["resources"] == {"limits": {"memory": "2Gi"}}, c["name"]
    runner = render.runner_deployment(strategy(), "uid-1", 1, settings)
    assert runner["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "200Mi"}}
    assert OperatorSettings.from_env("t", {}).job_resources["limits"]["memory"] == "1Gi"


def test_summary_fold_formats_for_kubectl_get() -> None:
    folded = fold_summary(
        {
            "pnl": "12.3456",
            "equity": "10012.3456",
            "trades": "7",
            "win_rate": "0.5714285",
            "open_positions": "1",
            "halted_reason": "",
            "updated_ms": "1700000000000",
        }
    )
    assert folded["pnl"] == "12.35"
    assert folded["trades"] == 7
    assert folded["winRate"] == "57.1%"
    assert folded["summaryUpdated"] == "2023-11-14T22:13:20Z"
    assert folded["haltedReason"] is None


def test_conditions_keep_transition_time_unless_status_flips() -> None:
    conds = Conditions(None, 3)
    conds.set("Ready", False, "RunnerStarting", "x", 1_000)
    first = conds.get("Ready")
    assert first is not None and first["observedGeneration"] == 3
    again = Conditions(conds.items, 4)
    again.set("Ready", False, "RunnerStarting", "y", 99_000)
    assert again.get("Ready")["lastTransitionTime"] == first["lastTransitionTime"]  # type: ignore[index]
    assert again.flipped == []
    again.set("Ready", True, "RunnerReporting", "z", 99_000)
    assert again.flipped and again.get("Ready")["lastTransitionTime"] != first["lastTransitionTime"]  # type: ignore[index]


def test_rbac_rendered_copy_is_current_and_least_privilege() -> None:
    path = Path(rbac.__file__).with_name("rbac.yaml")
    assert path.read_text() == rbac.render(), (
        "run: python -m kubetrade.operator.rbac > kubetrade/operator/rbac.yaml"
    )
    for component, rules in rbac.RULES.items():
        for rule in rules:
            assert "secrets" not in rule["resources"], component
            assert "pods" not in rule["resources"] or component != "runner"
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    runner_verbs = {v for r in rbac.RULES["runner"] for v in r["verbs"]}
    assert runner_verbs == {"get", "list", "watch"}


def test_admission_rendered_copy_is_current() -> None:
    path = Path(admission.__file__).with_name("admission.yaml")
    assert path.read_text() == admission.render(), "run: python -m kubetrade.operator.admission"


def test_per_strategy_runner_identity() -> None:
    s = strategy(riskPolicyRef="tight")
    sa, role, binding = render.runner_rbac(s, "uid-1", SETTINGS)
    assert sa["metadata"]["name"] == role["metadata"]["name"] == "kubetrade-runner-btc-sma"
    assert {(r["resources"][0], tuple(r["resourceNames"])) for r in role["rules"]} == {
        ("strategies", ("btc-sma",)),
        ("riskpolicies", ("tight",)),
        ("emergencies", ("default",)),
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubetrade-runner-btc-sma", "namespace": "trading"}
    ]
    pod = deployment(s)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubetrade-runner-btc-sma"
    shared = OperatorSettings.from_env("trading", {"KUBETRADE_RUNNER_SERVICE_ACCOUNT": "kt-runner"})
    assert shared.runner_rbac == "shared"
    assert render.runner_rbac(s, "uid-1", shared) == []
    assert (
        render.runner_deployment(s, "u", 1, shared)["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        == "kt-runner"
    )


def test_names_fit_kubernetes_limits_for_the_longest_strategy_name() -> None:
    long = Strategy.model_validate(
        {
            "metadata": {"name": "s" * 45, "namespace": "trading"},
            "spec": {"algorithm": "sma-crossover", "symbols": ["BTC/USDT"]},
        }
    )
    chash = render.config_hash(long, SETTINGS)
    assert len(render.preflight_job_name(long.name, chash)) <= 63
    assert len(render.runner_name(long.name)) <= 63
    for obj in render.runner_rbac(long, "u", SETTINGS):
        assert len(obj["metadata"]["name"]) <= 63


def test_the_runner_is_ready_only_while_its_trading_loop_beats(tmp_path: Path) -> None:
    s = strategy()
    (container,) = render.runner_deployment(s, "uid", 1, OperatorSettings())["spec"]["template"][
        "spec"
    ]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBETRADE_HEARTBEAT_FILE"] == render.HEARTBEAT_FILE
    probe = container["readinessProbe"]
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"] and probe["periodSeconds"] == 10

    # the probe's own code, pointed at a file here: fresh -> 0, old or missing -> 1
    beat = tmp_path / "beat"
    check = command[2].replace(repr(render.HEARTBEAT_FILE), repr(str(beat)))

    def run() -> int:
        return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode

    assert run() == 1
    beat.touch()
    assert run() == 0
    old = time.time() - render.READY_MAX_AGE_S - 1
    os.utime(beat, (old, old))
    assert run() == 1


def test_runners_record_into_the_charts_candle_claim_when_there_is_one() -> None:
    """Issue 13 item 4 in a cluster: with the chart's candleData claim, each runner pod
    mounts it at KUBETRADE_DATADIR and records what it consumes (one writer per series
    through the Redis lease); without it nothing changes, the config hash included (an
    operator upgrade must not roll every runner)."""
    s = strategy()
    plain = deployment(s)
    with_claim = dataclasses.replace(SETTINGS, candle_claim="kt-kubetrade-candles")
    d = render.runner_deployment(s, "uid-1", 1, with_claim)
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {"name": "candle-data",
            "persistentVolumeClaim": {"claimName": "kt-kubetrade-candles"}} in pod["volumes"]
    assert {"name": "candle-data", "mountPath": "/data/candles"} in c["volumeMounts"]
    assert {"name": "KUBETRADE_DATADIR", "value": "/data/candles"} in c["env"]
    plain_pod = plain["spec"]["template"]["spec"]
    assert all(v["name"] != "candle-data" for v in plain_pod["volumes"])
    assert all(e["name"] != "KUBETRADE_DATADIR" for e in plain_pod["containers"][0]["env"])
    assert render.config_hash(s, SETTINGS) == "b766868d3d31a34c"  # as before claims existed
    assert render.config_hash(s, with_claim) != render.config_hash(s, SETTINGS)
