"""``kubetrade_candle_recorder_leader{symbol, recorder}`` names the runner writing a
symbol's candles: it follows the recorder's lease at each scrape, not only when a
candle arrives."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from kubetrade.runner.metrics import RunnerMetrics


def test_the_leader_gauge_follows_the_recorder_live() -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    leader = {"BTC/USDT": False}

    def value(recorder: str) -> float | None:
        return registry.get_sample_value("kubetrade_candle_recorder_leader",
                                         {"symbol": "BTC/USDT", "recorder": recorder})

    metrics.recorder_leading("pod-a", leader)
    assert value("pod-a") == 0.0
    leader["BTC/USDT"] = True  # took the lease between two candles
    assert value("pod-a") == 1.0
    metrics.recorder_leading("pod-a", leader)  # again at the next candle: same series
    assert value("pod-a") == 1.0 and value("pod-b") is None
