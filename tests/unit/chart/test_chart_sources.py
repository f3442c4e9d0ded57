"""The chart ships copies of generated files (CRDs, RBAC rules, admission policies);
each copy must equal what its generator produces now, or `make crds` was forgotten."""

from __future__ import annotations

from pathlib import Path

from kubetrade.operator import admission, rbac

FILES = Path(__file__).resolve().parents[3] / "charts" / "kubetrade" / "files"


def test_rbac_rules_are_the_operators() -> None:
    assert (FILES / "rbac-rules.yaml").read_text() == rbac.chart_rules(), "run: make crds"


def test_admission_policies_are_the_operators() -> None:
    assert (FILES / "admission.yaml").read_text() == admission.render(), "run: make crds"
