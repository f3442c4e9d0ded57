"""Paths of the real recorded candles (vendored in tests/data/market) and Strategy YAML."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.marketdata import market_file as shared_data

__all__ = ["filters_dir", "shared_data", "strategy_yaml"]


def filters_dir(tmp_path: Path) -> Path:
    """A data dir whose filters snapshot also knows freqtrade's fictitious test pair
    UNIT/BTC (replay refuses a symbol without exchange filters)."""
    from kubetrade.marketdata.filters import (
        FilterSet,
        load_filters,
        save_filters,
        snapshot_path,
    )

    shipped = load_filters()
    unit = replace(shipped.market("ETH/BTC"), symbol="UNIT/BTC", base="UNIT")
    d = tmp_path / "candles"
    save_filters(FilterSet(shipped.exchange, shipped.as_of, "test",
                           {**shipped.markets, "UNIT/BTC": unit}), snapshot_path(d))
    return d


def strategy_yaml(name: str, algorithm: str, parameters: str, symbol: str, timeframe: str,
                  risk: str = "") -> str:
    doc = f"""apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: {algorithm}
  parameters: {parameters}
  symbols: ["{symbol}"]
  timeframe: {timeframe}
  riskPolicyRef: {name}-risk
"""
    if risk:
        doc += f"""---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: {name}-risk}}
spec: {risk}
"""
    return doc
