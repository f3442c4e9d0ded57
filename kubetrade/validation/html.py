"""The validation report as one self-contained HTML page: verdict, criteria, figures,
tables and three plots (equity against buy-and-hold, drawdown, trades on the price).

Plots are drawn by matplotlib as inline SVG: no JavaScript, no CDN, nothing fetched,
so the page opens offline and under any content security policy. matplotlib is
imported here only, when a page is written (it costs about half a second).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.validation.curve import downsample
from kubetrade.validation.summary import format_summary

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1 .GO{color:#1a7f37}h1 .NO-GO{color:#c62828}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:1em}
figure{margin:1em 0}figcaption{font-weight:bold}"""


PLOT_POINTS = 1500
"""Most equity points a plot draws (per bucket the lowest and highest, as the report)."""
PLOT_TRADES = 500
"""Most trades marked on the price plot (the latest; the tables count them all)."""


def _dates(ms: Sequence[int]) -> Any:
    """Times in ms as numpy datetime64 (what matplotlib plots as dates)."""
    return np.array(ms, dtype="datetime64[ms]")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")  # one draw (bbox_inches="tight" draws twice)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plots(report: Mapping[str, Any]) -> dict[str, str]:
    """SVG text of each plot: ``equity``, ``drawdown`` and (with prices) ``trades``."""
    # imported here, when a page is drawn: matplotlib costs ~0.3 s of start-up that a
    # --no-html run never pays. Figure without pyplot: no global figure registry, no
    # GUI backend, and pyplot's own import (~0.4 s) is never paid
    from matplotlib.figure import Figure

    curve = downsample([(p["ts_ms"], float(p["equity"])) for p in report["equity_curve"]],
                       PLOT_POINTS)
    ts = [t for t, _ in curve]
    eq = [e for _, e in curve]
    prices = report.get("analysis", {}).get("price_curve") or []
    out: dict[str, str] = {}
    fig = Figure(figsize=(10, 3.5), layout="tight")
    ax = fig.subplots()
    ax.plot(_dates(ts), eq, label="strategy equity", lw=1)
    if prices and eq:
        first = prices[0][1]
        ax.plot(_dates([p[0] for p in prices]), [eq[0] * p[1] / first for p in prices],
                label="buy and hold", lw=1, alpha=0.7)
    ax.set_ylabel("equity (quote)")
    ax.legend(loc="best")
    out["equity"] = _svg(fig)
    fig = Figure(figsize=(10, 2.5), layout="tight")
    ax = fig.subplots()
    peak = float("-inf")
    dd = []
    for e in eq:
        peak = max(peak, e)
        dd.append((e / peak - 1) * 100 if peak > 0 else 0.0)
    ax.fill_between(_dates(ts), dd, 0, color="#c62828", alpha=0.4, step="post")
    ax.set_ylabel("drawdown (%)")
    out["drawdown"] = _svg(fig)
    if prices:
        fig = Figure(figsize=(10, 3.5), layout="tight")
        ax = fig.subplots()
        ax.plot(_dates([p[0] for p in prices]), [p[1] for p in prices], lw=0.8, color="#555")
        trades = report.get("trades", [])[-PLOT_TRADES:]
        ax.scatter(_dates([t["entry_ms"] for t in trades]),
                   [float(t["entry_price"]) for t in trades], marker="^", color="#1a7f37",
                   label="entry", zorder=3)
        ax.scatter(_dates([t["exit_ms"] for t in trades]),
                   [float(t["exit_price"]) for t in trades], marker="v", color="#c62828",
                   label="exit", zorder=3)
        ax.set_ylabel("price")
        ax.legend(loc="best")
        out["trades"] = _svg(fig)
    return out


def _table(rows: Mapping[str, Mapping[str, Any]], first: str) -> str:
    if not rows:
        return "<p>none</p>"
    cols = list(next(iter(rows.values())).keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [first, *cols])
    body = "".join(
        "<tr>" + f"<td>{html.escape(str(k))}</td>" + "".join(
            f"<td>{html.escape(_cell(v.get(c)))}</td>" for c in cols) + "</tr>"
        for k, v in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def render(report: Mapping[str, Any]) -> str:
    """The whole page."""
    a = report.get("analysis", {})
    figs = plots(report)
    figures = {k: a.get(k) for k in ("cagr", "sortino", "calmar", "profit_factor",
                                     "expectancy", "sqn", "fees_paid",
                                     "slippage_paid_estimate")}
    ld = a.get("longest_drawdown") or {}
    bh = a.get("buy_and_hold") or {}
    parts = [
        f"<h1>Validation of {html.escape(report['run']['strategy'])}: "
        f"<span class=\"{html.escape(report['decision'])}\">"
        f"{html.escape(report['decision'])}</span></h1>",
        f"<pre>{html.escape(format_summary(report))}</pre>",
        "<h2>Figures</h2>", _table({"value": figures}, "") if figures else "",
        f"<p>Longest drawdown: {ld.get('days', 0):.2f} days from {ld.get('start')} to "
        f"{ld.get('end')}{'' if ld.get('recovered', True) else ' (not recovered)'}. "
        f"Buy and hold: return {_cell(bh.get('return'))}, final equity "
        f"{bh.get('final_equity')}. Drawdown is marked to market.</p>",
    ]
    for name, caption in (("equity", "Equity against buy and hold"),
                          ("drawdown", "Drawdown"), ("trades", "Trades on the price")):
        if name in figs:
            parts.append(f"<figure id=\"plot-{name}\"><figcaption>{caption}</figcaption>"
                         f"{figs[name]}</figure>")
    n_trades = len(report.get("trades", []))
    if n_trades > PLOT_TRADES and "trades" in figs:
        parts.append(f"<p>The price plot marks the last {PLOT_TRADES} of {n_trades} "
                     "trades.</p>")
    parts.append("<h2>Open positions at the end</h2>")
    parts.append(_table({p["symbol"]: {k: v for k, v in p.items() if k != "symbol"}
                         for p in report.get("open_positions", [])}, "symbol"))
    for key, title in (("by_symbol", "By symbol"), ("by_exit_reason", "By exit reason"),
                       ("by_month", "By month"), ("by_week", "By week"),
                       ("by_day", "By day")):
        parts.append(f"<h2>{title}</h2>" + _table(a.get(key, {}), key[3:]))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"Validation {html.escape(report['run']['strategy'])}</title><style>{_STYLE}"
            f"</style></head><body>{''.join(parts)}</body></html>\n")


def write_html(report: Mapping[str, Any], json_path: Path) -> Path:
    """The page beside the JSON report (same name, ``.html``), written atomically."""
    path = json_path.with_suffix(".html")
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["plots", "render", "write_html"]
