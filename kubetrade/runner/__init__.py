"""The trading loop of one strategy: market data -> engine -> exchange -> state."""
