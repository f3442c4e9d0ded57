// A small canvas line chart: one or more series of {x: ms, y: number}, time axis,
// value axis with rounded ticks. No library, so the page works with no internet.
"use strict";

(function () {
  const COLORS = ["#3498db", "#2ecc71", "#f39c12", "#9b59b6", "#e67e22", "#1abc9c"];

  function niceStep(range, ticks) {
    const raw = range / Math.max(1, ticks);
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const norm = raw / mag;
    const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return nice * mag;
  }

  function fmtTime(ms, span) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    if (span > 2 * 86400000) return `${d.getUTCMonth() + 1}/${d.getUTCDate()}`;
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }

  // series: [{label, points: [{x, y}], width?}]
  function drawLineChart(canvas, series) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || canvas.width;
    const cssH = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const pts = series.flatMap((s) => s.points);
    canvas.dataset.points = String(pts.length);
    if (pts.length === 0) return false;

    let xMin = Math.min(...pts.map((p) => p.x)), xMax = Math.max(...pts.map((p) => p.x));
    let yMin = Math.min(...pts.map((p) => p.y)), yMax = Math.max(...pts.map((p) => p.y));
    if (xMax === xMin) { xMin -= 60000; xMax += 60000; }
    if (yMax === yMin) { const pad = Math.abs(yMax) * 0.01 || 1; yMin -= pad; yMax += pad; }
    const step = niceStep(yMax - yMin, 5);
    yMin = Math.floor(yMin / step) * step;
    yMax = Math.ceil(yMax / step) * step;

    const left = 70, right = 12, top = 10, bottom = 24;
    const w = cssW - left - right, h = cssH - top - bottom;
    const sx = (x) => left + ((x - xMin) / (xMax - xMin)) * w;
    const sy = (y) => top + h - ((y - yMin) / (yMax - yMin)) * h;

    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#8a96a3";
    ctx.strokeStyle = "#25303b";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let y = yMin; y <= yMax + step / 2; y += step) {
      ctx.beginPath();
      ctx.moveTo(left, sy(y));
      ctx.lineTo(left + w, sy(y));
      ctx.stroke();
      ctx.fillText(y.toLocaleString(undefined, { maximumFractionDigits: 2 }), left - 6, sy(y));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xTicks = Math.max(2, Math.floor(w / 110));
    for (let i = 0; i <= xTicks; i++) {
      const x = xMin + ((xMax - xMin) * i) / xTicks;
      ctx.fillText(fmtTime(x, xMax - xMin), sx(x), top + h + 6);
    }

    series.forEach((s, i) => {
      if (s.points.length === 0) return;
      ctx.strokeStyle = s.color || COLORS[i % COLORS.length];
      ctx.lineWidth = s.width || 2;
      ctx.beginPath();
      s.points.forEach((p, j) => (j ? ctx.lineTo(sx(p.x), sy(p.y)) : ctx.moveTo(sx(p.x), sy(p.y))));
      ctx.stroke();
    });
    // legend
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    let lx = left + 8;
    series.forEach((s, i) => {
      if (!s.label) return;
      ctx.fillStyle = s.color || COLORS[i % COLORS.length];
      ctx.fillRect(lx, top + 4, 10, 3);
      ctx.fillStyle = "#e6e6e6";
      ctx.fillText(s.label, lx + 14, top);
      lx += 24 + ctx.measureText(s.label).width;
    });
    return true;
  }

  window.drawLineChart = drawLineChart;
})();
