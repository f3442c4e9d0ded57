"""The Kubernetes objects the operator makes, as pure functions of the resources.

Kept free of I/O so every rule (security context, secret by reference, config hash,
owner reference) is checked by unit tests, and so the e2e test can start exactly the
command and environment a pod would get.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubetrade.operator.settings import OperatorSettings
from kubetrade.resources import API_VERSION, EMERGENCY_NAME, GROUP, Strategy

MANAGED_BY = "kubetrade-operator"
SECRETS_DIR = "/var/run/secrets/kubetrade/exchange"
CONFIG_HASH = "kubetrade.io/config-hash"
STRATEGY_LABEL = "kubetrade.io/strategy"
JOB_LABEL = "kubetrade.io/job"
VALIDATION_LABEL = "kubetrade.io/validation-run"

#: Spec fields the runner applies while running (it watches its Strategy); changing
#: only these must not restart the pod. Everything else is in the config hash.
LIVE_FIELDS = frozenset({"enabled", "closePositionsOnDelete"})

Manifest = dict[str, Any]


def safe_name(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label (also a valid label value): dots become dashes and,
    when that changed it or it is longer than ``limit``, it is cut and ends with 8 hex
    of the original's SHA-256, so two names never collide. Every name the API accepts
    (a DNS subdomain, up to 253 characters) gives a valid derived name."""
    name = text.lower().replace(".", "-")
    if name == text and len(name) <= limit:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def runner_name(strategy: str) -> str:
    """The runner Deployment's (and its ServiceAccount's, Role's) name."""
    return safe_name(f"kubetrade-runner-{strategy}")


def preflight_job_name(strategy: str, config_hash: str) -> str:
    """At most 63 characters (a Job's name becomes a label value of its pods)."""
    return f"{safe_name(f'preflight-{strategy}', 54)}-{config_hash[:8]}"


def validation_job_name(run: str) -> str:
    return safe_name(f"validation-{run}")


def label_value(name: str) -> str:
    """An object name as a label value (at most 63 characters, see :func:`safe_name`)."""
    return safe_name(name)


def labels(strategy: str, component: str, mode: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "kubetrade",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": strategy,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "kubetrade",
        STRATEGY_LABEL: strategy,
    }
    if mode:
        out["kubetrade.io/mode"] = mode
    return out


def selector(strategy: str) -> dict[str, str]:
    return {"app.kubernetes.io/component": "runner", STRATEGY_LABEL: strategy}


def config_hash(strategy: Strategy, settings: OperatorSettings) -> str:
    """Hash of everything a runner reads only at start: spec fields it cannot take live,
    and the operator settings that shape the pod. A change rolls the pod (Recreate)."""
    spec = strategy.spec.to_manifest_dict()
    material = {
        "spec": {k: v for k, v in sorted(spec.items()) if k not in LIVE_FIELDS},
        "image": settings.image,
        "env": sorted(settings.passthrough.items()),
        "redis": [settings.redis_url, settings.redis_secret, settings.redis_prefix],
    }
    if settings.candle_claim:  # only when set: installs without one keep their hashes
        material["candleClaim"] = settings.candle_claim
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def owner_reference(kind: str, name: str, uid: str, controller: bool = True) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def pod_security_context() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(testnet: bool, settings: OperatorSettings) -> list[Manifest]:
    env: list[Manifest] = []
    if settings.redis_secret:
        env.append(
            {
                "name": "REDIS_URL",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": settings.redis_secret,
                        "key": settings.redis_secret_key,
                    }
                },
            }
        )
    elif settings.redis_url:
        env.append({"name": "REDIS_URL", "value": settings.redis_url})
    env += [
        {"name": "KUBETRADE_REDIS_PREFIX", "value": settings.redis_prefix},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "BINANCE_TESTNET", "value": "true" if testnet else "false"},
        {"name": "KUBETRADE_SECRETS_DIR", "value": SECRETS_DIR},
        {"name": "METRICS_PORT", "value": str(settings.metrics_port)},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(settings.passthrough.items())]
    return env


def _volumes(secret: str | None) -> tuple[list[Manifest], list[Manifest]]:
    """The exchange keys come only as a read-only Secret volume, never as env values
    the operator could see or log."""
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 (in the pod)
    if secret:
        volumes.append(
            {
                "name": "exchange-keys",
                "secret": {
                    "secretName": secret,
                    "defaultMode": 0o440,
                    "items": [
                        {"key": "apiKey", "path": "apiKey"},
                        {"key": "secretKey", "path": "secretKey"},
                    ],
                },
            }
        )
        mounts.append({"name": "exchange-keys", "mountPath": SECRETS_DIR, "readOnly": True})
    return volumes, mounts


def _container(
    name: str, args: list[str], testnet: bool, secret: str | None, settings: OperatorSettings,
    resources: Manifest,
) -> Manifest:
    """A kubetrade container running ``kubetrade *args`` with ``resources`` (the runner's,
    or the Jobs' ``settings.job_resources``)."""
    _, mounts = _volumes(secret)
    return {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["kubetrade", *args],
        "env": _env(testnet, settings),
        "resources": resources,
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


#: The file the runner's trading loop touches with every heartbeat (10 s; on the pod's
#: /tmp emptyDir), and the age after which the pod is not ready.
HEARTBEAT_FILE = "/tmp/kubetrade-heartbeat"  # noqa: S108 (in the pod)
READY_MAX_AGE_S = 30


def readiness_probe() -> Manifest:
    """Ready = the runner's trading loop is running: its heartbeat file (touched from the
    loop every 10 s, once restore and reconciliation are done) is younger than
    ``READY_MAX_AGE_S``. A loop that is blocked or has not started is not ready."""
    check = (
        "import os,sys,time; "
        f"sys.exit(0 if time.time() - os.path.getmtime({HEARTBEAT_FILE!r}) < {READY_MAX_AGE_S}"
        " else 1)"
    )
    return {
        "exec": {"command": ["python", "-c", check]},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def runner_service_account(strategy: str, settings: OperatorSettings) -> str:
    if settings.runner_rbac == "per-strategy":
        return runner_name(strategy)
    return settings.runner_service_account


def runner_rbac(strategy: Strategy, uid: str, settings: OperatorSettings) -> list[Manifest]:
    """A ServiceAccount, Role and RoleBinding letting one runner read its own Strategy,
    the RiskPolicy it references and the Emergency, by name, and nothing else (empty
    in shared mode). Lists and watches are allowed only with a metadata.name field
    selector, which is how the runner watches."""
    if settings.runner_rbac != "per-strategy":
        return []
    name = runner_name(strategy.name)
    namespace = strategy.metadata.namespace or settings.namespace
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": labels(strategy.name, "runner"),
        "ownerReferences": [owner_reference("Strategy", strategy.name, uid)],
    }
    read = ["get", "list", "watch"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["strategies"],
                    "resourceNames": [strategy.name],
                    "verbs": read,
                },
                {
                    "apiGroups": [GROUP],
                    "resources": ["riskpolicies"],
                    "resourceNames": [strategy.spec.risk_policy_ref],
                    "verbs": read,
                },
                {
                    "apiGroups": [GROUP],
                    "resources": ["emergencies"],
                    "resourceNames": [EMERGENCY_NAME],
                    "verbs": read,
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _runner_container(strategy: Strategy, namespace: str, settings: OperatorSettings) -> Manifest:
    """The runner container: metrics port, liveness on /metrics, readiness on the loop.
    Its image is ``spec.image`` when the Strategy names one (an image built FROM
    kubetrade's with plugin algorithms installed, docs/plugins.md), else the operator's;
    command, security context, probes and pull policy are the same either way. Only the
    runner runs ``spec.image``: the pre-flight and validation Jobs stay on the operator's
    image."""
    container = _container(
        "runner",
        ["runner", "--strategy", strategy.name, "--namespace", namespace],
        strategy.spec.exchange.testnet,
        strategy.spec.exchange.credentials_secret,
        settings,
        settings.runner_resources,
    )
    if strategy.spec.image:
        container["image"] = strategy.spec.image
    container["ports"] = [{"name": "metrics", "containerPort": settings.metrics_port}]
    container["livenessProbe"] = {
        "httpGet": {"path": "/metrics", "port": "metrics"},
        "initialDelaySeconds": 30,
        "periodSeconds": 30,
        "failureThreshold": 4,
    }
    container["env"].append({"name": "KUBETRADE_HEARTBEAT_FILE", "value": HEARTBEAT_FILE})
    container["readinessProbe"] = readiness_probe()
    return container


#: Where pods mount the chart's candle store (``--datadir``, KUBETRADE_DATADIR).
CANDLE_DATADIR = "/data/candles"
CANDLE_VOLUME = "candle-data"


def _with_candle_store(
    container: Manifest, volumes: list[Manifest], settings: OperatorSettings
) -> None:
    """With the chart's candle-data claim (``settings.candle_claim``), the runner records
    every exchange candle it consumes into it (KUBETRADE_DATADIR), one writer per series
    through the Redis lease (docs/marketdata.md). Runners on several nodes need the
    claim ReadWriteMany."""
    if not settings.candle_claim:
        return
    volumes.append({"name": CANDLE_VOLUME,
                    "persistentVolumeClaim": {"claimName": settings.candle_claim}})
    container["volumeMounts"].append({"name": CANDLE_VOLUME, "mountPath": CANDLE_DATADIR})
    container["env"].append({"name": "KUBETRADE_DATADIR", "value": CANDLE_DATADIR})


def runner_deployment(
    strategy: Strategy, uid: str, replicas: int, settings: OperatorSettings
) -> Manifest:
    """The runner Deployment of ``strategy`` (1 replica, or 0 while disabled/blocked)."""
    name = strategy.name
    namespace = strategy.metadata.namespace or settings.namespace
    chash = config_hash(strategy, settings)
    secret = strategy.spec.exchange.credentials_secret
    volumes, _ = _volumes(secret)
    container = _runner_container(strategy, namespace, settings)
    _with_candle_store(container, volumes, settings)
    pod_labels = labels(name, "runner", strategy.spec.mode)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": runner_name(name),
            "namespace": namespace,
            "labels": pod_labels,
            "annotations": {CONFIG_HASH: chash},
            "ownerReferences": [owner_reference("Strategy", name, uid)],
        },
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(name)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        CONFIG_HASH: chash,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(settings.metrics_port),
                    },
                },
                "spec": {
                    "serviceAccountName": runner_service_account(name, settings),
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def job_failure_policy() -> Manifest:
    """The ``podFailurePolicy`` of every Job of the operator (with ``backoffLimit: 0``):
    a pod taken away by a node drain, a preemption or an eviction (pod condition
    ``DisruptionTarget``) is replaced without counting as a failure, so only the
    command's own failure fails the Job. Kubernetes: "Handling Pod and container
    failures", pod failure policy (batch/v1, GA in 1.31); needs ``restartPolicy: Never``.
    """
    return {"rules": [{"action": "Ignore",
                       "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}


def job_pod_template(
    job_labels: Manifest, container: Manifest, volumes: list[Manifest],
    settings: OperatorSettings, **pod: Any,
) -> Manifest:
    """The pod template every Job of the operator runs (pre-flight, validation): never
    restarted, the Jobs' service account, restricted security context; ``pod`` adds
    fields (init containers)."""
    return {
        "metadata": {"labels": job_labels},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": settings.job_service_account,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            **pod,
            "containers": [container],
            "volumes": volumes,
        },
    }


def preflight_job(strategy: Strategy, uid: str, chash: str, settings: OperatorSettings) -> Manifest:
    """The live pre-flight as a Job; named after the config hash so a new config gets a
    fresh check and an operator restart finds the one it already started."""
    name = strategy.name
    namespace = strategy.metadata.namespace or settings.namespace
    secret = strategy.spec.exchange.credentials_secret
    volumes, _ = _volumes(secret)
    container = _container(
        "preflight",
        ["preflight", "--strategy", name, "--namespace", namespace],
        strategy.spec.exchange.testnet,
        secret,
        settings,
        settings.job_resources,
    )
    # its report names the configuration it checked (the CapitalAllocated condition)
    container["env"].append({"name": "KUBETRADE_CONFIG_HASH", "value": chash})
    job_labels = {**labels(name, "preflight", strategy.spec.mode), JOB_LABEL: "preflight"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": preflight_job_name(name, chash),
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {CONFIG_HASH: chash},
            "ownerReferences": [owner_reference("Strategy", name, uid)],
        },
        "spec": {
            "backoffLimit": 0,
            "podFailurePolicy": job_failure_policy(),
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 86400,
            "template": job_pod_template(job_labels, container, volumes, settings),
        },
    }
