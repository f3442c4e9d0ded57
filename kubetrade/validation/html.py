"""The validation report as one self-contained HTML page: verdict, criteria, figures,
tables and three plots (equity against buy-and-hold, drawdown, trades on the price).

Plots are drawn in the browser by uPlot (https://github.com/leeoniya/uPlot, MIT, the
file vendored in ``static/`` with its licence) from the plotted points embedded in the
page as JSON: the library and the data are inline, nothing is fetched, so the page
opens offline. Python only picks the points (a bounded number of them), so writing a
page costs milliseconds; matplotlib drawing SVG cost ~0.7 s and its import ~0.35 s.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from kubetrade.validation.curve import downsample
from kubetrade.validation.report import iso
from kubetrade.validation.summary import format_summary

_STATIC = Path(__file__).with_name("static")
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1 .GO{color:#1a7f37}h1 .NO-GO{color:#c62828}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:1em}
figure{margin:1em 0}figcaption{font-weight:bold}.u-legend td{border:none}"""

PLOT_POINTS = 1500
"""Most equity points a plot draws (per bucket the lowest and highest, as the report)."""
PLOT_TRADES = 500
"""Most trades marked on the price plot (the latest; the tables count them all)."""

# Each plot is {"x": ms, "series": [{"label", "y", "kind", "color"}], "ylabel"}: one
# uPlot chart, its series on the shared x (null where a series has no point)
_DRAW = """(function () {
  "use strict";
  var plots = JSON.parse(document.getElementById("plot-data").textContent);
  var width = Math.min(1100, document.body.clientWidth || 1100);
  window.kubetradePlots = {};
  Object.keys(plots).forEach(function (name) {
    var p = plots[name];
    var series = [{}].concat(p.series.map(function (s) {
      var out = {label: s.label, stroke: s.color, width: 1.5, spanGaps: true};
      if (s.kind === "fill") { out.fill = s.color + "66"; out.width = 1; }
      if (s.kind === "points") {
        out.paths = function () { return null; };
        out.points = {show: true, size: 8, space: 0, fill: s.color, stroke: s.color};
      }
      return out;
    }));
    var opts = {width: width, height: p.height, ms: 1, series: series,
                axes: [{}, {label: p.ylabel, size: 70}]};
    var data = [p.x].concat(p.series.map(function (s) { return s.y; }));
    var target = document.querySelector("#plot-" + name + " .plot");
    window.kubetradePlots[name] = new uPlot(opts, data, target);
  });
})();"""


@cache
def _asset(name: str) -> str:
    """A vendored file of ``static/`` (read once per process)."""
    return (_STATIC / name).read_text(encoding="utf-8")


def _merged(columns: Sequence[Sequence[tuple[int, float]]]
            ) -> tuple[list[int], list[list[float | None]]]:
    """The times of all ``columns`` (ms, value) in order, and each column's value at
    each of them (None where it has none): uPlot's one x axis for several series."""
    xs = sorted({t for col in columns for t, _ in col})
    at = {t: i for i, t in enumerate(xs)}
    ys: list[list[float | None]] = []
    for col in columns:
        y: list[float | None] = [None] * len(xs)
        for t, v in col:
            y[at[t]] = v
        ys.append(y)
    return xs, ys


def _plot(columns: Sequence[tuple[str, str, str, Sequence[tuple[int, float]]]], ylabel: str,
          height: int) -> dict[str, Any]:
    """One chart: ``columns`` of (label, kind line/fill/points, colour, points)."""
    x, ys = _merged([c[3] for c in columns])
    return {"x": x, "ylabel": ylabel, "height": height,
            "series": [{"label": label, "kind": kind, "color": color, "y": y}
                       for (label, kind, color, _), y in zip(columns, ys, strict=True)]}


def plot_data(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The points of each plot: ``equity`` (against buy and hold), ``drawdown`` and
    (with prices) ``trades`` on the price; each at most ``PLOT_POINTS`` equity points,
    the report's price points and the last ``PLOT_TRADES`` trades."""
    curve = downsample([(p["ts_ms"], float(p["equity"])) for p in report["equity_curve"]],
                       PLOT_POINTS)
    prices = [(int(t), float(p)) for t, p in
              report.get("analysis", {}).get("price_curve") or []]
    equity = [("strategy equity", "line", "#1f77b4", curve)]
    if prices and curve:
        first, base = prices[0][1], curve[0][1]
        equity.append(("buy and hold", "line", "#ff7f0e",
                       [(t, base * p / first) for t, p in prices]))
    out = {"equity": _plot(equity, "equity (quote)", 320)}
    peak = float("-inf")
    dd = []
    for t, e in curve:
        peak = max(peak, e)
        dd.append((t, (e / peak - 1) * 100 if peak > 0 else 0.0))
    out["drawdown"] = _plot([("drawdown", "fill", "#c62828", dd)], "drawdown (%)", 220)
    if prices:
        trades = report.get("trades", [])[-PLOT_TRADES:]
        out["trades"] = _plot([
            ("price", "line", "#555555", prices),
            ("entry", "points", "#1a7f37",
             [(t["entry_ms"], float(t["entry_price"])) for t in trades]),
            ("exit", "points", "#c62828",
             [(t["exit_ms"], float(t["exit_price"])) for t in trades]),
        ], "price", 320)
    return out


def _scripts(data: Mapping[str, Any]) -> str:
    """The library, the points and the code drawing them, all inline."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (f"<style>{_asset('uPlot.min.css')}</style>"
            f"<script type=\"application/json\" id=\"plot-data\">{text}</script>"
            f"<script>{_asset('uPlot.iife.min.js')}</script><script>{_DRAW}</script>")


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


def _sweep(section: Mapping[str, Any] | None) -> str:
    """A sweep's walk-forward: both ranges, what it ranked by, and the top combinations
    with their in-sample figures (the verdict above is the best one's out-of-sample
    run); empty for a run that was not a sweep."""
    if not section:
        return ""
    ins, outs = section.get("in_sample") or {}, section.get("out_of_sample") or {}

    def span(part: Mapping[str, Any]) -> str:
        return (f"{part.get('candles')} candles, {_iso_or_blank(part.get('start_ms'))} to "
                f"{_iso_or_blank(part.get('end_ms'))}")

    rows = {str(k): {"parameters": " ".join(f"{n}={v}" for n, v in r["parameters"].items()),
                     **{f: r.get(f) for f in ("sharpe", "total_return", "trades",
                                              "max_drawdown", "error")}}
            for k, r in enumerate(section.get("top") or [], 1)}
    return ("<h2>Parameter sweep (walk-forward)</h2>"
            f"<p>{section.get('combinations')} combinations ({section.get('refused', 0)} "
            f"refused), ranked by {html.escape(str(section.get('ranked_by')))} on the "
            f"in-sample part ({html.escape(span(ins))}); the decision is from "
            f"{html.escape(str(section.get('decision_from')))} "
            f"({html.escape(span(outs))}).</p>" + _table(rows, "rank"))


def _iso_or_blank(ts_ms: Any) -> str:
    """``ts_ms`` as ISO 8601 UTC, or "?" when absent."""
    return iso(int(ts_ms)) if ts_ms is not None else "?"


def render(report: Mapping[str, Any]) -> str:
    """The whole page."""
    a = report.get("analysis", {})
    figs = plot_data(report)
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
                         "<div class=\"plot\"></div></figure>")
    n_trades = len(report.get("trades", []))
    if n_trades > PLOT_TRADES and "trades" in figs:
        parts.append(f"<p>The price plot marks the last {PLOT_TRADES} of {n_trades} "
                     "trades.</p>")
    parts.append("<h2>Open positions at the end</h2>")
    parts.append(_table({p["symbol"]: {k: v for k, v in p.items() if k != "symbol"}
                         for p in report.get("open_positions", [])}, "symbol"))
    parts.append(_sweep(report.get("sweep")))
    for key, title in (("by_symbol", "By symbol"), ("by_exit_reason", "By exit reason"),
                       ("by_month", "By month"), ("by_week", "By week"),
                       ("by_day", "By day")):
        parts.append(f"<h2>{title}</h2>" + _table(a.get(key, {}), key[3:]))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"Validation {html.escape(report['run']['strategy'])}</title><style>{_STYLE}"
            f"</style></head><body>{''.join(parts)}{_scripts(figs)}</body></html>\n")


def write_html(report: Mapping[str, Any], json_path: Path) -> Path:
    """The page beside the JSON report (same name, ``.html``), written atomically."""
    path = json_path.with_suffix(".html")
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["plot_data", "render", "write_html"]
