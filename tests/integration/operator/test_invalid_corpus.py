"""Every bad custom resource in tests/data/invalid is refused by the real API server,
with a message naming the field, and refused by the offline loader too.

Each file says why it is bad (first comment line) and what the refusal must contain
(``# expect: ...``), so adding a case is adding a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.resources import ManifestError, load_manifests
from tests.bed import ControlPlane

CORPUS = Path(__file__).resolve().parents[2] / "data" / "invalid"
CASES = sorted(CORPUS.glob("*.yaml"))


def _expected(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# expect: "):
            return line.removeprefix("# expect: ")
    raise AssertionError(f"{path.name} has no '# expect:' line")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_api_server_refuses_naming_the_field(
    path: Path, apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str
) -> None:
    result = apiserver.kubectl("-n", k8s_namespace, "apply", "-f", str(path), check=False)
    assert result.returncode != 0, f"{path.name} was accepted:\n{result.stdout}"
    assert _expected(path) in result.stderr


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_offline_loader_refuses_too(path: Path) -> None:
    """`kubetrade local` / `validate --strategy-file` must not run what the cluster refuses."""
    with pytest.raises(ManifestError):
        load_manifests(path)


def test_valid_manifests_pass_both(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, tmp_path: Path
) -> None:
    """The corpus fails for its one mistake, not because the base manifests are wrong."""
    good = tmp_path / "good.yaml"
    good.write_text(
        """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: btc-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT", "ETH/USDT"]
  mode: live
  exchange: {name: binance, testnet: true, credentialsSecret: binance-keys}
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec: {stopLossPct: 5, dailyLossLimitPct: 3, allowedSymbols: ["BTC/USDT"]}
---
apiVersion: kubetrade.io/v1alpha1
kind: Emergency
metadata: {name: default}
spec: {action: stop, reason: test}
---
apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {name: run-1}
spec: {strategyRef: btc-sma, duration: 1d12h, criteria: {minWinRatePct: 50}}
"""
    )
    assert len(load_manifests(good)) == 4
    result = apiserver.kubectl("-n", k8s_namespace, "apply", "-f", str(good), check=False)
    assert result.returncode == 0, result.stderr
    got = apiserver.kubectl(
        "-n",
        k8s_namespace,
        "get",
        "strategy",
        "btc-sma",
        "-o",
        "jsonpath={.spec.initialCapital} {.spec.enabled}",
    )
    assert got.stdout == "10000 true"  # defaults filled in by the API server


def test_validation_run_spec_is_immutable(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str
) -> None:
    manifest = (
        "apiVersion: kubetrade.io/v1alpha1\nkind: ValidationRun\nmetadata: {name: v}\n"
        "spec: {strategyRef: a}\n"
    )
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-", input=manifest)
    result = apiserver.kubectl(
        "-n",
        k8s_namespace,
        "patch",
        "validationrun",
        "v",
        "--type=merge",
        "-p",
        '{"spec":{"strategyRef":"b"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr


@pytest.mark.parametrize("client", [["--validate=false"], ["--validate=strict"], ["--server-side"]])
def test_a_misspelt_parameter_is_refused_whatever_the_client(
    client: list[str], apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str
) -> None:
    """Issue 19: with a client that does not ask for strict field validation (Helm, the
    Python client, --validate=false) the API server used to prune ``fastPerod`` and the
    Strategy traded with the default fast period."""
    manifest = (
        "apiVersion: kubetrade.io/v1alpha1\nkind: Strategy\nmetadata: {name: typo}\n"
        "spec:\n  algorithm: sma-crossover\n  parameters: {fastPerod: 5, slowPeriod: 30}\n"
        '  symbols: ["BTC/USDT"]\n'
    )
    result = apiserver.kubectl(
        "-n", k8s_namespace, "apply", *client, "-f", "-", input=manifest, check=False
    )
    assert result.returncode != 0, result.stdout
    assert "spec.parameters.fastPerod: not a parameter of sma-crossover" in result.stderr


def test_a_plugin_algorithm_with_an_image_is_accepted(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, tmp_path: Path
) -> None:
    """Issue 18: a Strategy naming an algorithm the CRD does not know is accepted when
    spec.image names the image that carries it, parameters unchecked by the API server
    (the plugin's own model checks them when its runner starts); the offline loader
    takes it too."""
    plugin = tmp_path / "plugin.yaml"
    plugin.write_text(
        """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: btc-donchian}
spec:
  algorithm: donchian-breakout
  image: registry.example.com/kubetrade-donchian:1.0
  parameters: {period: 20, exitPeriod: 10}
  symbols: ["BTC/USDT"]
"""
    )
    assert len(load_manifests(plugin)) == 1
    result = apiserver.kubectl("-n", k8s_namespace, "apply", "-f", str(plugin), check=False)
    assert result.returncode == 0, result.stderr
    got = apiserver.kubectl(
        "-n",
        k8s_namespace,
        "get",
        "strategy",
        "btc-donchian",
        "-o",
        "jsonpath={.spec.algorithm} {.spec.image} {.spec.parameters.exitPeriod}",
    )
    assert got.stdout == "donchian-breakout registry.example.com/kubetrade-donchian:1.0 10"
