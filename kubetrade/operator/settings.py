"""The operator's configuration, from its environment (names shared with the Helm chart)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetrade.state.keys import DEFAULT_PREFIX

#: Operator environment copied into runner and job pods when set (the e2e tests point
#: runners at the fake exchange and at replayed candles this way).
PASSTHROUGH_ENV = (
    "KUBETRADE_EXCHANGE_URL",
    "KUBETRADE_MARKET_DATA",
    "KUBETRADE_REPLAY_INTERVAL",
    "KUBETRADE_RECONCILE_INTERVAL",
    "LOG_LEVEL",
)

DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}
#: Pre-flight and validation Jobs (and a sweep's slice pods): a replay holds its candles
#: in memory, ~230 MiB at its peak for a million one-minute candles (bench/validate.py)
DEFAULT_JOB_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = "default"
    image: str = "kubetrade:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    runner_service_account: str = "kubetrade-runner"
    #: "per-strategy": each runner gets its own ServiceAccount and a Role naming only its
    #: Strategy, RiskPolicy and the Emergency; "shared": every runner uses
    #: ``runner_service_account`` (read access to all three kinds in the namespace).
    runner_rbac: str = "per-strategy"
    job_service_account: str = "kubetrade-jobs"
    runner_resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    job_resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_JOB_RESOURCES))
    redis_url: str | None = None
    redis_secret: str | None = None
    redis_secret_key: str = "redis-url"  # noqa: S105 (a key name, not a value)
    redis_prefix: str = DEFAULT_PREFIX
    status_interval: float = 10.0
    metrics_port: int = 9100
    delete_timeout: float = 120.0
    disable_timeout: float = 60.0
    #: seconds without a word from a runner (summary or heartbeat, written every 10 s)
    #: after which its Strategy shows phase Stale and Ready=False
    heartbeat_max_age: float = 60.0
    #: the chart's candle-data PersistentVolumeClaim, mounted by ValidationRun Jobs that
    #: replay the candle store (None: an emptyDir, filled only by their download step)
    candle_claim: str | None = None
    passthrough: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, namespace: str | None = None, environ: Mapping[str, str] | None = None
    ) -> OperatorSettings:
        env = os.environ if environ is None else environ
        resources = env.get("KUBETRADE_RUNNER_RESOURCES")
        job_resources = env.get("KUBETRADE_JOB_RESOURCES")
        return cls(
            namespace=namespace or env.get("POD_NAMESPACE", "default"),
            image=env.get("KUBETRADE_RUNNER_IMAGE", cls.image),
            image_pull_policy=env.get("KUBETRADE_IMAGE_PULL_POLICY", cls.image_pull_policy),
            runner_service_account=env.get(
                "KUBETRADE_RUNNER_SERVICE_ACCOUNT", cls.runner_service_account
            ),
            runner_rbac=env.get(
                "KUBETRADE_RUNNER_RBAC",
                "shared" if env.get("KUBETRADE_RUNNER_SERVICE_ACCOUNT") else "per-strategy",
            ),
            job_service_account=env.get("KUBETRADE_JOB_SERVICE_ACCOUNT", cls.job_service_account),
            runner_resources=json.loads(resources) if resources else dict(DEFAULT_RESOURCES),
            job_resources=(json.loads(job_resources) if job_resources
                           else dict(DEFAULT_JOB_RESOURCES)),
            redis_url=env.get("REDIS_URL") or None,
            redis_secret=env.get("KUBETRADE_REDIS_SECRET") or None,
            redis_secret_key=env.get("KUBETRADE_REDIS_SECRET_KEY", cls.redis_secret_key),
            redis_prefix=env.get("KUBETRADE_REDIS_PREFIX", DEFAULT_PREFIX),
            status_interval=float(env.get("KUBETRADE_STATUS_INTERVAL", cls.status_interval)),
            metrics_port=int(env.get("KUBETRADE_RUNNER_METRICS_PORT", cls.metrics_port)),
            delete_timeout=float(env.get("KUBETRADE_DELETE_TIMEOUT", cls.delete_timeout)),
            disable_timeout=float(env.get("KUBETRADE_DISABLE_TIMEOUT", cls.disable_timeout)),
            heartbeat_max_age=float(env.get("KUBETRADE_HEARTBEAT_MAX_AGE", cls.heartbeat_max_age)),
            candle_claim=env.get("KUBETRADE_CANDLE_CLAIM") or None,
            passthrough={k: env[k] for k in PASSTHROUGH_ENV if env.get(k)},
        )
