"""The resource models accept what users write and refuse mistakes naming the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from kubetrade.resources import (
    Emergency,
    ManifestError,
    RiskPolicy,
    Strategy,
    ValidationRun,
    load_manifests,
    load_strategy_file,
    parse_manifest,
)

DESIGN_EXAMPLE = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: btc-sma}
spec:
  algorithm: sma-crossover        # also rsi-mean-reversion, bollinger-breakout
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper                     # or live
  exchange: {name: binance, testnet: true, credentialsSecret: binance-keys}
  riskPolicyRef: default
  enabled: true
"""


def strategy_doc(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {
        "algorithm": "sma-crossover",
        "parameters": {"fastPeriod": 10, "slowPeriod": 30},
        "symbols": ["BTC/USDT"],
    }
    base.update(spec)
    return {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": "s1"},
        "spec": base,
    }


def test_design_example_parses_with_defaults(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(DESIGN_EXAMPLE)
    s = load_strategy_file(f)
    assert s.name == "btc-sma"
    assert s.spec.exchange.credentials_secret == "binance-keys"
    assert s.spec.initial_capital == Decimal(10000)
    assert s.spec.close_positions_on_delete is False
    assert s.spec.risk_policy_ref == "default"


def test_manifest_round_trips_through_yaml() -> None:
    s = parse_manifest(strategy_doc(initialCapital=2500.5))
    assert isinstance(s, Strategy)
    again = parse_manifest(yaml.safe_load(yaml.safe_dump(s.to_manifest())))
    assert again == s
    assert s.to_manifest()["spec"]["initialCapital"] == 2500.5
    assert s.spec.initial_capital == Decimal("2500.5")


def test_python_names_are_accepted_too() -> None:
    doc = strategy_doc(risk_policy_ref="tight", close_positions_on_delete=True)
    s = parse_manifest(doc)
    assert isinstance(s, Strategy)
    assert s.spec.risk_policy_ref == "tight"
    assert s.to_manifest()["spec"]["closePositionsOnDelete"] is True


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"parameters": {"fastPeriod": 30, "slowPeriod": 10}}, "slowPeriod"),
        ({"parameters": {"fastPerod": 5}}, "parameters.fastPerod"),
        ({"algorithm": "martingale"}, "algorithm"),
        ({"symbols": ["BTCUSDT"]}, "symbols[0]"),
        ({"symbols": []}, "spec.symbols"),
        ({"mode": "yolo"}, "spec.mode"),
        ({"mode": "live", "exchange": {"testnet": False}}, "exchange.credentialsSecret"),
        ({"initialCapital": -1}, "spec.initialCapital"),
        ({"riskPolicyRef": "Bad_Name"}, "spec.riskPolicyRef"),
        ({"stopLosPct": 5}, "spec.stopLosPct"),
    ],
)
def test_bad_strategy_is_refused_naming_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ManifestError, match="s1") as info:
        parse_manifest(strategy_doc(**spec))
    assert field in str(info.value)


def test_risk_policy_defaults_allow_paper_and_flag_live_gaps() -> None:
    rp = parse_manifest(
        {"kind": "RiskPolicy", "metadata": {"name": "default"}, "spec": {"stopLossPct": 0}}
    )
    assert isinstance(rp, RiskPolicy)
    assert rp.spec.live_ready == ["spec.stopLossPct must be > 0 for live trading"]
    assert RiskPolicy.model_validate({"metadata": {"name": "x"}}).spec.live_ready == []
    with pytest.raises(ManifestError, match=r"spec.dailyLossLimitPct"):
        parse_manifest(
            {"kind": "RiskPolicy", "metadata": {"name": "x"}, "spec": {"dailyLossLimitPct": 101}}
        )


def test_emergency_must_be_named_default() -> None:
    ok = parse_manifest({"kind": "Emergency", "metadata": {"name": "default"}})
    assert isinstance(ok, Emergency) and ok.spec.action == "none"
    with pytest.raises(ManifestError, match=r"metadata.name"):
        parse_manifest({"kind": "Emergency", "metadata": {"name": "other"}})
    with pytest.raises(ManifestError, match=r"spec.action"):
        parse_manifest(
            {"kind": "Emergency", "metadata": {"name": "default"}, "spec": {"action": "panic"}}
        )


def test_validation_run_duration_and_ref() -> None:
    vr = parse_manifest(
        {"kind": "ValidationRun", "metadata": {"name": "v"}, "spec": {"strategyRef": "s1"}}
    )
    assert isinstance(vr, ValidationRun) and vr.spec.duration == "48h"
    with pytest.raises(ManifestError, match=r"spec.duration"):
        parse_manifest(
            {
                "kind": "ValidationRun",
                "metadata": {"name": "v"},
                "spec": {"strategyRef": "s1", "duration": "two days"},
            }
        )


def test_load_manifests_reads_directories_and_multi_doc(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        DESIGN_EXAMPLE + "\n---\nkind: RiskPolicy\napiVersion: kubetrade.io/v1alpha1\n"
        "metadata: {name: default}\n---\n"
    )
    (tmp_path / "b.yml").write_text(
        yaml.safe_dump({"kind": "Emergency", "metadata": {"name": "default"}})
    )
    (tmp_path / "notes.txt").write_text("ignored")
    kinds = [type(r).__name__ for r in load_manifests(tmp_path)]
    assert kinds == ["Strategy", "RiskPolicy", "Emergency"]


def test_load_errors_name_file_and_document(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(DESIGN_EXAMPLE + "---\nkind: Widget\nmetadata: {name: w}\n")
    with pytest.raises(ManifestError, match=r"bad.yaml \(document 2\): kind 'Widget'"):
        load_manifests(f)
    with pytest.raises(ManifestError, match="exactly one Strategy, found 0"):
        (tmp_path / "rp.yaml").write_text("kind: RiskPolicy\nmetadata: {name: default}\n")
        load_strategy_file(tmp_path / "rp.yaml")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        # a misspelt field: the error leads with it and names the field meant
        ({"spce": "x"}, "s1: spce: unknown field (did you mean 'spec'?); spec: Field required"),
        ({"spec": {"algoritm": "sma-crossover", "symbols": ["BTC/USDT"]}},
         "spec.algoritm: unknown field (did you mean 'algorithm'?)"),
        ({"spec": {**strategy_doc()["spec"], "exchange": {"nmae": "binance"}}},  # type: ignore[dict-item]
         "spec.exchange.nmae: unknown field (did you mean 'name'?)"),
        # nothing near: no guess
        ({"spec": {**strategy_doc()["spec"], "colour": "red"}},  # type: ignore[dict-item]
         "s1: spec.colour: unknown field"),
        # a check of the whole spec names its own field once
        ({"spec": {**strategy_doc()["spec"], "parameters": {"fastPeriod": 10,  # type: ignore[dict-item]
                                                             "slowperiod": 30}}},
         "s1: spec.parameters.slowperiod: not a parameter of sma-crossover"),
    ],
)
def test_unknown_fields_are_named_with_the_field_meant(change: dict[str, object],
                                                       says: str) -> None:
    doc = strategy_doc()
    if "spec" not in change:
        del doc["spec"]
    doc.update(change)
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, "f.yaml")
    assert says in str(info.value)
    if "did you mean" not in says:
        assert "did you mean" not in str(info.value)


def test_yaml_errors_name_file_line_and_column_on_one_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("kind: Strategy\nspec:\n  symbols: [\"BTC/USDT\"\n")
    with pytest.raises(ManifestError) as info:
        load_manifests(f)
    assert str(info.value) == (
        f"{f}:4:1: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)")
