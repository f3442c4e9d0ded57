"""Strategy status for a live runner with a paper twin (issue 20): the summary fields
the twin writes become ``twinDivergence`` and ``sizeStep``, the ``Divergence`` and
``Size`` columns of ``kubectl get strategies -o wide``; a paper runner has neither."""

from __future__ import annotations

from kubetrade.operator.status import fold_summary
from kubetrade.resources.crdgen import KINDS


def test_twin_fields_fold_into_the_status() -> None:
    folded = fold_summary({"pnl": "1", "twin_divergence_pct": "0.4213", "size_pct": "25"})
    assert folded["twinDivergence"] == "0.42%" and folded["sizeStep"] == "25%"
    paper = fold_summary({"pnl": "1", "equity": "10001"})
    assert "twinDivergence" not in paper and "sizeStep" not in paper


def test_wide_columns_show_divergence_and_size() -> None:
    strategy = next(k for k in KINDS if k.kind == "Strategy")
    wide = {c["name"]: c for c in strategy.columns if c.get("priority") == 1}
    assert wide["Divergence"]["jsonPath"] == ".status.twinDivergence"
    assert wide["Size"]["jsonPath"] == ".status.sizeStep"
