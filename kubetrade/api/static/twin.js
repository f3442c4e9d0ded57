// The "Live vs paper twin" panel (issue 20): per live strategy, its figures against its
// paper twin (GET /api/live-vs-paper), the size-ramp step, how far live has moved from
// its validation report, and both equity curves on one chart.
"use strict";

(function () {
  const el = window.ktDom.el;
  const num = (v, digits = 2) => window.ktDom.num(v, digits, true);  // figures side by side
  function pctOf(fraction) {
    return fraction === null || fraction === undefined ? "–" : (fraction * 100).toFixed(2) + " %";
  }
  function sign(v) { const n = Number(v); return n > 0 ? "gain" : n < 0 ? "loss" : ""; }

  function table(head, rows) {
    const t = el("table");
    const thead = el("thead"), tr = el("tr");
    head.forEach((h) => tr.appendChild(el("th", h)));
    thead.appendChild(tr);
    const body = el("tbody");
    rows.forEach((cells) => {
      const r = el("tr");
      cells.forEach((c) => {
        const td = el("td", typeof c === "object" && c !== null ? c.text : c);
        if (typeof c === "object" && c !== null && c.cls) td.className = c.cls;
        r.appendChild(td);
      });
      body.appendChild(r);
    });
    t.append(thead, body);
    return t;
  }

  function books(c) {
    return table(["Book", "P&L", "Fees", "Trades", "Rejected"], ["live", "twin"].map((b) => [
      b === "live" ? "live" : "paper twin",
      { text: num(c[b].pnl), cls: "num " + sign(c[b].pnl) }, { text: num(c[b].fees), cls: "num" },
      { text: c[b].trades, cls: "num" }, { text: c.rejected[b], cls: "num" },
    ]));
  }

  function execution(r) {
    const c = r.comparison;
    const ramp = r.ramp_change ? ` (${r.ramp_change.action}: ${r.ramp_change.reason})` : "";
    const rows = [
      ["Divergence", { text: `${num(c.divergence_pct)} % of ${Number(c.threshold_pct) > 0 ? num(c.threshold_pct) + " %" : "no threshold"}`, cls: c.diverged ? "loss" : "" }],
      ["Fills matched / missed / extra", `${c.fills_matched} / ${c.fills_missed} / ${c.fills_extra}`],
      ["Avg slippage vs twin", c.avg_slippage_bps === null ? "–" : `${num(c.avg_slippage_bps)} bps`],
      ["Decision to fill", c.avg_latency_ms === null ? "–" : `${c.avg_latency_ms} ms avg, ${c.max_latency_ms} ms max`],
      ["Size step", `${r.size_pct} %${ramp}`],
    ];
    const ref = r.reference;
    if (ref) {
      rows.push([`vs validation (${ref.decision})`,
        `return ${pctOf(ref.live.total_return)} vs ${pctOf(ref.validation.total_return)}, ` +
        `win rate ${pctOf(ref.live.win_rate)} vs ${pctOf(ref.validation.win_rate)}`]);
    }
    return table(["", ""], rows);
  }

  function chart(r) {
    const canvas = el("canvas");
    canvas.width = 900; canvas.height = 200;
    canvas.dataset.strategy = r.name;
    canvas.setAttribute("aria-label", `${r.name}: live and paper twin equity`);
    const pts = (xs) => xs.map(([x, y]) => ({ x, y: Number(y) }));
    // drawn once the canvas is in the page (its CSS width is known then)
    requestAnimationFrame(() => window.drawLineChart(canvas, [
      { label: "live", points: pts(r.equity.live || []), color: "#3498db" },
      { label: "paper twin", points: pts(r.equity.twin || []), color: "#f39c12" },
    ]));
    return canvas;
  }

  // box: the panel's container; rows: GET /api/live-vs-paper
  function renderLiveVsPaper(box, rows) {
    if (!rows.length) { box.replaceChildren(el("p", "No live strategy has a paper twin.", "muted")); return; }
    box.replaceChildren(...rows.map((r) => {
      const d = el("div", null, "twin");
      d.dataset.strategy = r.name;
      d.appendChild(el("h3", r.name));
      if (!r.comparison) { d.appendChild(el("p", "No candle compared yet.", "muted")); return d; }
      const grid = el("div", null, "grid2");
      grid.append(books(r.comparison), execution(r));
      d.append(grid, chart(r));
      return d;
    }));
  }

  window.renderLiveVsPaper = renderLiveVsPaper;
})();
