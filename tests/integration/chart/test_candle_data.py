"""The chart's candle store: a PersistentVolumeClaim that ValidationRuns replaying the
store mount (the operator learns its name from KUBETRADE_CANDLE_CLAIM), sized and
classed by values, off by default, or an existing claim."""

from __future__ import annotations

from typing import Any

import yaml

from kubetrade.operator.settings import OperatorSettings
from tests.bed import Binaries, ControlPlane
from tests.integration.chart.test_chart import CHART, RELEASE, helm, render


def claims(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    dep = next(o for o in objects if o["kind"] == "Deployment"
               and o["metadata"]["name"].endswith("-operator"))
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def test_off_by_default_no_claim_and_no_setting(kube_bin: Binaries) -> None:
    objects = render(kube_bin, "trading")
    assert claims(objects) == []
    assert "KUBETRADE_CANDLE_CLAIM" not in operator_env(objects)


def test_enabled_claim_is_sized_and_named_to_the_operator(kube_bin: Binaries) -> None:
    objects = render(kube_bin, "trading", "candleData.persistence.enabled=true",
                     "candleData.persistence.size=50Gi")
    (pvc,) = claims(objects)
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]  # the cluster's default class
    env = operator_env(objects)
    assert env["KUBETRADE_CANDLE_CLAIM"] == pvc["metadata"]["name"]
    settings = OperatorSettings.from_env(environ=env)
    assert settings.candle_claim == pvc["metadata"]["name"]

    shared = render(kube_bin, "trading", "candleData.persistence.enabled=true",
                    "candleData.persistence.storageClass=nfs",
                    "candleData.persistence.accessModes[0]=ReadWriteMany")
    (pvc,) = claims(shared)
    assert pvc["spec"]["storageClassName"] == "nfs"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_an_existing_claim_is_used_not_created(kube_bin: Binaries) -> None:
    objects = render(kube_bin, "trading", "candleData.persistence.existingClaim=my-candles")
    assert claims(objects) == []
    assert operator_env(objects)["KUBETRADE_CANDLE_CLAIM"] == "my-candles"


def test_bad_candle_values_are_refused_naming_them(kube_bin: Binaries) -> None:
    for value, named in (("candleData.persistence.accessModes[0]=ReadSometimes",
                          "/candleData/persistence/accessModes/0"),
                         ("candleData.persistence.size=lots", "/candleData/persistence/size"),
                         ("candleData.persistence.existingClaim=Bad_Name",
                          "/candleData/persistence/existingClaim")):
        out = helm(kube_bin, "template", RELEASE, str(CHART), "--set", value)
        assert out.returncode != 0, value
        assert named in out.stderr, out.stderr


def test_the_claim_is_accepted_by_the_api_server(
    kube_bin: Binaries, apiserver: ControlPlane, k8s_namespace: str
) -> None:
    (pvc,) = claims(render(kube_bin, k8s_namespace, "candleData.persistence.enabled=true"))
    result = apiserver.kubectl("-n", k8s_namespace, "apply", "--dry-run=server", "-f", "-",
                               input=yaml.safe_dump(pvc), check=False)
    assert result.returncode == 0, result.stderr
