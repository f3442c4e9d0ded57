"""Objects the operator's unit tests start from."""

from __future__ import annotations

from typing import Any

from kubetrade.resources import Strategy


def strategy(**spec: Any) -> Strategy:
    """A paper sma-crossover Strategy ``btc-sma`` in namespace ``trading``; ``spec``
    fields (camelCase, as users write them) replace the defaults."""
    base: dict[str, Any] = {
        "algorithm": "sma-crossover",
        "parameters": {"fastPeriod": 10, "slowPeriod": 30},
        "symbols": ["BTC/USDT"],
        "exchange": {"credentialsSecret": "binance-keys", "testnet": True},
    }
    base.update(spec)
    return Strategy.model_validate(
        {"metadata": {"name": "btc-sma", "namespace": "trading"}, "spec": base}
    )
