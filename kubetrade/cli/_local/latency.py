"""The runners' decision latency per candle in ``kubetrade local``, as a trader sees it.

:class:`TimedMarket` wraps a runner's market data (outermost, so it sees exactly what
the candle loop sees) and observes, for every candle, the seconds from the moment the
candle was *due* to the moment the runner was done with it (decided, orders persisted
and sent, summary written: the loop asks for the next candle):

- a replay is due ``pace_s`` after the runner asked for it (the replay's interval: the
  replay sleeps that long, so any lateness is the event loop's);
- an exchange candle is due when the source hands it over (its poll's own delay is the
  exchange's, not the process').

So it includes every wait on the event loop (timers firing late, Redis replies read
late), unlike ``kubetrade_decision_latency_seconds`` (the runner's own figure: from
taking the candle to its orders submitted, candles with orders only). Exposed as
``kubetrade_local_candle_decision_seconds{strategy}`` on the metrics port; bench/
local_api.py reads it beside the API's latency.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from kubetrade.domain.models import Candle
from kubetrade.runner.market import MarketSource

METRIC = "kubetrade_local_candle_decision_seconds"
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

_histograms: dict[int, Histogram] = {}


def decision_histogram(registry: CollectorRegistry = REGISTRY) -> Histogram:
    """The one histogram of ``registry`` (created on first use; labelled by strategy)."""
    key = id(registry)
    if key not in _histograms:
        _histograms[key] = Histogram(
            METRIC,
            "kubetrade local: seconds from a candle being due (replay: its pacing "
            "interval after the runner asked; exchange: handed over) to the runner being "
            "done with it (decided, orders sent, summary written).",
            ["strategy"],
            buckets=BUCKETS,
            registry=registry,
        )
    return _histograms[key]


class TimedMarket:
    """``inner`` whose candles are timed from due to done (see the module's text).

    ``observe`` takes the seconds of each candle the loop finished with (a candle the
    loop never comes back from, at a stop, is not observed); ``pace_s`` is the replay's
    interval (0 for exchange data); ``now`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        inner: MarketSource,
        observe: Callable[[float], None],
        pace_s: float = 0.0,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.observe = observe
        self.pace_s = pace_s if inner.kind == "replay" else 0.0
        self.now = now

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        source = aiter(self.inner.candles(cursor))
        try:
            while True:
                asked = self.now()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
                due = asked + self.pace_s if self.pace_s > 0 else self.now()
                yield item
                self.observe(max(0.0, self.now() - due))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
