"""Paths of the real recorded candles (../shared/data from the project root)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data(name: str) -> Path:
    root = Path(os.environ.get("KUBETRADE_SHARED_DATA")
                or Path(__file__).resolve().parents[3].parent / "shared" / "data")
    path = root / name
    assert path.is_file(), f"real candle file missing: {path} (set KUBETRADE_SHARED_DATA)"
    return path


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
