"""Prometheus series of the initial live period (issue 20): live against its paper
twin, and the size ramp. Labelled by strategy like every runner series; the chart's
``KubetradeLiveTwinDiverged`` rule compares ``kubetrade_twin_divergence_pct`` with
``kubetrade_twin_divergence_threshold_pct`` (the RiskPolicy's ``twinDivergencePct``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from kubetrade.domain.twin import LIVE, TWIN, Comparison

_S = ("strategy",)


class TwinMetrics:
    """The series, registered once per registry (``for_registry``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, [*_S, *labels], registry=registry)

        self.divergence = gauge(
            "kubetrade_twin_divergence_pct",
            "Live equity against its paper twin's: |gap| as percent of starting equity.")
        self.threshold = gauge(
            "kubetrade_twin_divergence_threshold_pct",
            "The RiskPolicy's twinDivergencePct (0 = no alert).")
        self.pnl = gauge("kubetrade_twin_pnl", "P&L of the live book and of its paper twin "
                         "(quote asset).", "book")
        self.fees = gauge("kubetrade_twin_fees", "Fees paid by each book (quote asset).", "book")
        self.trades = gauge("kubetrade_twin_trades", "Closed round trips of each book.", "book")
        self.rejected = gauge("kubetrade_twin_rejected_orders",
                              "Orders refused by the exchange (live) or the paper broker (twin).",
                              "book")
        self.fills = gauge("kubetrade_twin_fills", "Decisions by outcome: matched (filled on "
                           "both), missed (twin only), extra (live only).", "outcome")
        self.slippage = gauge("kubetrade_twin_slippage_bps",
                              "Mean live fill price against the twin's, bps (positive = worse).")
        self.latency = gauge("kubetrade_twin_fill_latency_seconds",
                             "Mean decision-to-fill time of live fills.")
        self.size = gauge("kubetrade_size_ramp_pct",
                          "The size-ramp step in force: percent of the full position size.")

    def show(self, name: str, c: Comparison) -> None:
        """Set every comparison series of strategy ``name``."""
        t = c.totals
        self.divergence.labels(name).set(float(c.divergence_pct))
        self.threshold.labels(name).set(float(c.threshold_pct))
        for book, fig, rejected in ((LIVE, c.live, t.rejected_live),
                                    (TWIN, c.twin, t.rejected_twin)):
            self.pnl.labels(name, book).set(float(fig.pnl))
            self.fees.labels(name, book).set(float(fig.fees))
            self.trades.labels(name, book).set(fig.trades)
            self.rejected.labels(name, book).set(rejected)
        for outcome, n in (("matched", t.fills_matched), ("missed", t.fills_missed),
                           ("extra", t.fills_extra)):
            self.fills.labels(name, outcome).set(n)
        slip = c.avg_slippage_bps
        self.slippage.labels(name).set(0.0 if slip is None else float(slip))
        latency = c.avg_latency_ms
        self.latency.labels(name).set(0.0 if latency is None else latency / 1000)


_BY_REGISTRY: dict[int, TwinMetrics] = {}


def for_registry(registry: CollectorRegistry) -> TwinMetrics:
    """The series on ``registry`` (created on first use)."""
    metrics = _BY_REGISTRY.get(id(registry))
    if metrics is None:
        metrics = _BY_REGISTRY[id(registry)] = TwinMetrics(registry)
    return metrics


__all__ = ["TwinMetrics", "for_registry"]
