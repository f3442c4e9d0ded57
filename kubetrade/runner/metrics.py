"""Every Prometheus metric of the runner, in one place (prefix ``kubetrade_``).

Labelled by strategy so ``kubetrade local`` (several strategies, one process) and a
cluster (one runner pod per strategy) expose the same series. Alert rules and the
Grafana dashboard in the Helm chart refer to these names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server

from kubetrade.domain.clock import Clock

BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


S = ("strategy",)


class RunnerMetrics:
    """The runner's Prometheus series, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry)

        self.orders = counter(
            "kubetrade_orders_total", "Orders submitted to the exchange, by final submission "
            "status.", *S, "symbol", "side", "status")
        self.fills = counter("kubetrade_fills_total",
                             "Fills applied (each exchange trade id once).", *S, "symbol", "side")
        self.rejections = counter(
            "kubetrade_order_rejections_total",
            "Orders refused, by the risk engine or the exchange, by reason.", *S, "reason")
        self.trades = counter("kubetrade_trades_closed_total",
                              "Round trips closed, by result (win/loss).", *S, "result")
        self.pnl = gauge("kubetrade_pnl", "Profit and loss since start (quote asset).", *S)
        self.equity = gauge("kubetrade_equity", "Portfolio equity (quote asset).", *S)
        self.drawdown = gauge("kubetrade_drawdown_ratio",
                              "Drawdown from the equity peak, as a fraction (0.05 = 5%).", *S)
        self.open_positions = gauge("kubetrade_open_positions", "Open positions.", *S)
        self.halted = gauge("kubetrade_halted", "1 while trading is halted.", *S)
        self.daily_loss_limit_used = gauge(
            "kubetrade_daily_loss_limit_used_ratio",
            "Today's loss as a fraction of the daily loss limit (0 no loss, 1.0 at the "
            "limit, when trading halts for the UTC day); 0 when the limit is off.", *S)
        self.drawdown_halted = gauge(
            "kubetrade_drawdown_halted",
            "1 while halted by the max-drawdown rule, until a person resumes.", *S)
        self.breaker = gauge("kubetrade_breaker_state",
                             "Exchange circuit breaker: 0 closed, 1 half-open, 2 open.", *S)
        self.candle_lag = gauge("kubetrade_candle_lag_seconds",
                                "Now minus the close time of the last candle processed.",
                                *S, "symbol")
        self.candles = counter("kubetrade_candles_total", "Candles processed.", *S, "symbol")
        self.decision_latency = Histogram(
            "kubetrade_decision_latency_seconds",
            "Candle received to orders submitted to the exchange client.",
            list(S),
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        self.reconciliation_mismatches = gauge(
            "kubetrade_reconciliation_mismatches",
            "Mismatches found by the latest reconciliation (the strategy's own plus its "
            "account's unattributed differences).", *S)
        self.reconciliations = counter("kubetrade_reconciliations_total",
                                       "Reconciliations run, by outcome.", *S, "outcome")
        self.emergency = counter("kubetrade_emergency_actions_total",
                                 "Emergency actions applied.", *S, "action")
        self.recovered_orders = counter(
            "kubetrade_recovered_orders_total",
            "Orders in CREATED/UNKNOWN state resolved at start, by outcome.", *S, "outcome")
        self._market_data_metrics(registry)

    def _market_data_metrics(self, registry: CollectorRegistry) -> None:
        """Issue 13's series: recording and the age of the market data (by symbol)."""
        self.candles_recorded = Counter(
            "kubetrade_candles_recorded_total",
            "Exchange candles this process wrote to the candle store (KUBETRADE_DATADIR; "
            "only the holder of a series' writer lease writes it).", ["symbol"],
            registry=registry)
        self.last_candle_age = Gauge(
            "kubetrade_last_candle_age_seconds",
            "Now (the runner's clock, read at scrape) minus the close time of the newest "
            "exchange candle consumed for the symbol; grows while no candle arrives.",
            ["symbol", "timeframe"], registry=registry)
        self.timeframe_seconds = Gauge(
            "kubetrade_candle_timeframe_seconds",
            "Length of the candles consumed for the symbol, in seconds (the stale-data "
            "alert compares kubetrade_last_candle_age_seconds with 3 of these).",
            ["symbol", "timeframe"], registry=registry)
        self.recorder_leader = Gauge(
            "kubetrade_candle_recorder_leader",
            "1 while this process's recorder (pod or strategy name) holds the symbol's "
            "writer lease and so is the one writing it to the candle store, else 0.",
            ["symbol", "recorder"], registry=registry)
        self._last_close_ms: dict[tuple[str, str], int] = {}
        self._recorded_seen: dict[tuple[int, str], int] = {}

    def set_risk(self, strategy: str, daily_loss_limit_used: float, drawdown_halted: bool) -> None:
        """The equity rules' gauges (from ``TradingEngine.risk_state()``)."""
        self.daily_loss_limit_used.labels(strategy).set(daily_loss_limit_used)
        self.drawdown_halted.labels(strategy).set(1 if drawdown_halted else 0)

    def set_breaker(self, strategy: str, state: str) -> None:
        self.breaker.labels(strategy).set(BREAKER_STATES.get(state.lower(), 2))

    def candle_consumed(self, symbol: str, timeframe: str, timeframe_ms: int, close_ms: int,
                        clock: Clock) -> None:
        """A live candle of ``symbol`` closing at ``close_ms`` (epoch ms) was consumed:
        ``kubetrade_last_candle_age_seconds`` is from now on ``clock.now_ms()`` minus the
        newest close seen, in seconds (never negative), computed at each scrape."""
        key = (symbol, timeframe)
        first = key not in self._last_close_ms
        self._last_close_ms[key] = max(close_ms, self._last_close_ms.get(key, close_ms))
        if first:
            self.timeframe_seconds.labels(symbol, timeframe).set(timeframe_ms / 1000)
            self.last_candle_age.labels(symbol, timeframe).set_function(
                lambda: max(0.0, (clock.now_ms() - self._last_close_ms[key]) / 1000))

    def candles_written(self, source: int, totals: Mapping[str, int]) -> None:
        """Bring ``kubetrade_candles_recorded_total`` up to a recorder's cumulative
        per-symbol ``totals`` (``source``: the recorder's id, so each counts once)."""
        for symbol, total in totals.items():
            seen = self._recorded_seen.get((source, symbol), 0)
            if total > seen:
                self.candles_recorded.labels(symbol).inc(total - seen)
                self._recorded_seen[(source, symbol)] = total

    def recorder_leading(self, recorder: str, leader: Mapping[str, bool]) -> None:
        """``kubetrade_candle_recorder_leader`` of ``recorder`` follows its live
        ``leader`` mapping (symbol -> holds the writer lease), read at each scrape."""
        for symbol in leader:
            self.recorder_leader.labels(symbol, recorder).set_function(
                functools.partial(_flag, leader, symbol))


def _flag(flags: Mapping[str, bool], key: str) -> float:
    return 1.0 if flags.get(key) else 0.0


_metrics: RunnerMetrics | None = None


def runner_metrics() -> RunnerMetrics:
    """The process-wide metrics (created once, registered on the default registry)."""
    global _metrics
    if _metrics is None:
        _metrics = RunnerMetrics()
    return _metrics


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped in-cluster
    """Serve ``/metrics`` on ``port`` from a background thread."""
    _start_http_server(port, addr=addr)
