"""Paths of the real recorded candles (vendored in tests/data/market) and Strategy YAML."""

from __future__ import annotations

from tests.marketdata import market_file as shared_data

__all__ = ["shared_data", "strategy_yaml"]


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
