"""`kubetrade local --strategies DIR`: one name, one runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.cli._local.seed import load_strategy_dir

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "strategies" / "btc-sma.yaml"
POLICY = ("---\napiVersion: kubetrade.io/v1alpha1\nkind: RiskPolicy\nmetadata: {name: default}\n"
          "spec: {stopLossPct: %s}\n")


def test_a_copied_strategy_with_the_same_name_is_refused_naming_both_files(
        tmp_path: Path) -> None:
    # two runners of one name would both trade and book each other's fills
    (tmp_path / "btc-sma.yaml").write_text(EXAMPLE.read_text())
    (tmp_path / "btc-sma-copy.yaml").write_text(EXAMPLE.read_text())
    with pytest.raises(ValueError, match=(
            r"Strategy 'btc-sma' is in both btc-sma-copy.yaml and btc-sma.yaml: "
            r"each Strategy needs its own metadata.name")):
        load_strategy_dir(tmp_path)


def test_one_policy_in_two_files_is_fine_unless_they_differ(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(EXAMPLE.read_text() + POLICY % 3)
    (tmp_path / "b.yaml").write_text(EXAMPLE.read_text().replace("btc-sma", "btc-sma-2")
                                     + POLICY % 3)
    strategies, policies = load_strategy_dir(tmp_path)
    assert [s["metadata"]["name"] for s in strategies] == ["btc-sma", "btc-sma-2"]
    assert len(policies) == 2
    (tmp_path / "b.yaml").write_text(EXAMPLE.read_text().replace("btc-sma", "btc-sma-2")
                                     + POLICY % 4)
    with pytest.raises(ValueError, match=r"RiskPolicy 'default' is in both a\.yaml and b\.yaml"):
        load_strategy_dir(tmp_path)


def test_the_same_name_twice_in_one_file_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(EXAMPLE.read_text() + "---\n" + EXAMPLE.read_text())
    with pytest.raises(ValueError, match=r"Strategy 'btc-sma' is twice in two\.yaml"):
        load_strategy_dir(tmp_path)
