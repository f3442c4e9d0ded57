"""The ValidationRun examples of a sweep and of a store replay are accepted by the real
API server (schema and CEL rules of the generated CRD) and render the Jobs they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.operator.render_validation import validation_job
from kubetrade.operator.settings import OperatorSettings
from kubetrade.resources import ValidationRun, load_manifests
from tests.bed import ControlPlane

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("name", ["validationrun-sweep.yaml", "validationrun-store.yaml"])
def test_the_api_server_accepts_the_example(
    name: str, apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str
) -> None:
    result = apiserver.kubectl("-n", k8s_namespace, "apply", "--dry-run=server", "-f",
                               str(EXAMPLES / name), check=False)
    assert result.returncode == 0, result.stderr


def test_the_examples_render_the_jobs_they_describe() -> None:
    (sweep,) = load_manifests(EXAMPLES / "validationrun-sweep.yaml")
    assert isinstance(sweep, ValidationRun)
    spec = validation_job(sweep, "uid", OperatorSettings())["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 4, 4)
    (store,) = load_manifests(EXAMPLES / "validationrun-store.yaml")
    assert isinstance(store, ValidationRun)
    pod = validation_job(store, "uid", OperatorSettings(), ("BTC/USDT", "1m"))["spec"][
        "template"]["spec"]
    assert pod["initContainers"][0]["command"][1:3] == ["data", "download"]
