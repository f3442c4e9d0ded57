// kubetrade dashboard: REST for state, WebSocket for "something changed" pushes.
// Everything from the server is put into the page with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;
  let authRequired = true;
  let socket = null;
  let wsBackoff = 500;
  let lastAnalytics = null;
  const pending = new Set();
  let flushTimer = null;

  // -- helpers ----------------------------------------------------------------
  const { el, num } = window.ktDom;
  function pct(v) {
    return v === null || v === undefined ? "–" : (Number(v) * 100).toFixed(1) + " %";
  }
  function time(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "–";
  }
  function signClass(v) {
    const n = Number(v);
    return n > 0 ? "up" : n < 0 ? "down" : "";
  }
  function fillTable(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows);
  }
  function row(cells) {
    const tr = el("tr");
    for (const c of cells) {
      if (c instanceof Node) {
        const td = el("td");
        td.appendChild(c);
        tr.appendChild(td);
      } else if (c && typeof c === "object") {
        tr.appendChild(el("td", c.text, c.cls));
      } else {
        tr.appendChild(el("td", c));
      }
    }
    return tr;
  }
  function showError(msg) {
    $("error-bar").textContent = msg || "";
  }

  // -- auth & fetch -----------------------------------------------------------
  function tokens() {
    return { access: store.getItem("kt_access"), refresh: store.getItem("kt_refresh") };
  }
  function saveTokens(t) {
    store.setItem("kt_access", t.access_token);
    store.setItem("kt_refresh", t.refresh_token);
  }
  function clearTokens() {
    store.removeItem("kt_access");
    store.removeItem("kt_refresh");
  }

  async function refreshTokens() {
    const { refresh } = tokens();
    if (!refresh) return false;
    const r = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    });
    if (!r.ok) return false;
    saveTokens(await r.json());
    return true;
  }

  async function api(path, opts = {}, retry = true) {
    const headers = Object.assign({}, opts.headers || {});
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const { access } = tokens();
    if (authRequired && access) headers.Authorization = "Bearer " + access;
    const r = await fetch(path, {
      method: opts.method || "GET",
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    if (r.status === 401 && authRequired) {
      if (retry && (await refreshTokens())) return api(path, opts, false);
      clearTokens();
      showLogin();
      throw new Error("signed out");
    }
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) {
      const d = data && data.detail;
      throw new Error(typeof d === "string" ? d : `${r.status} ${r.statusText}`);
    }
    return data;
  }

  function showLogin() {
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
    $("main-view").classList.add("hidden");
    $("login-view").classList.remove("hidden");
    $("btn-logout").classList.add("hidden");
    $("login-password").focus();
  }

  function showMain() {
    $("login-view").classList.add("hidden");
    $("main-view").classList.remove("hidden");
    $("btn-logout").classList.toggle("hidden", !authRequired);
    refreshAll();
    connectSocket();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    const r = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("login-username").value, password: $("login-password").value }),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      $("login-error").textContent = typeof data.detail === "string" ? data.detail : "login failed";
      return;
    }
    $("login-password").value = "";
    saveTokens(data);
    showMain();
  });

  $("btn-logout").addEventListener("click", async () => {
    try { await api("/api/auth/logout", { method: "POST", body: {} }, false); } catch (e) { /* gone anyway */ }
    clearTokens();
    showLogin();
  });

  // -- panels -----------------------------------------------------------------
  async function loadStatus() {
    const s = await api("/api/status");
    const b = $("status-badge");
    b.textContent = s.status;
    b.className = "badge " + s.status;
    // the newest candle each runner consumed; "stale" (as the API says: exchange data
    // that closed more than 3 timeframes ago) in the loss colour
    const rows = [];
    for (const st of s.strategies) {
      for (const c of st.last_candles || []) {
        const state = c.stale ? "stale" : (st.market_data || "–");
        const cell = el("td", time(c.open_ms), c.stale ? "down stale" : "");
        cell.dataset.lastCandle = `${st.name} ${c.symbol}`;
        const tr = row([st.name, c.symbol]);
        tr.appendChild(cell);
        tr.appendChild(el("td", state, c.stale ? "down" : "muted"));
        rows.push(tr);
      }
    }
    fillTable("market-table", rows);
  }

  async function loadPortfolio() {
    const p = await api("/api/portfolio");
    $("stat-equity").textContent = num(p.equity);
    const pnl = $("stat-pnl");
    pnl.textContent = num(p.pnl);
    pnl.className = signClass(p.pnl);
    $("stat-positions").textContent = String(p.open_positions);
    fillTable("positions-table", p.positions.map((x) => row([
      x.strategy, x.symbol, { text: num(x.quantity, 8), cls: "num" }, { text: num(x.average_price), cls: "num" },
      { text: num(x.stop_price), cls: "num" }, time(x.opened_ms),
    ])));
  }

  async function loadStrategies() {
    const list = await api("/api/strategies");
    fillTable("strategies-table", list.map((st) => {
      const s = st.stats || {};
      let toggle;
      if (st.configured) {
        toggle = el("button", st.enabled ? "on" : "off", st.enabled ? "toggle-on" : "toggle-off");
        toggle.dataset.strategy = st.name;
        toggle.setAttribute("aria-pressed", st.enabled ? "true" : "false");
        toggle.addEventListener("click", async () => {
          toggle.disabled = true;
          try {
            await api(`/api/strategies/${encodeURIComponent(st.name)}/toggle`, { method: "POST", body: { enabled: !st.enabled } });
            await loadStrategies();
            await loadAudit();
          } catch (e) { showError(e.message); toggle.disabled = false; }
        });
      } else {
        toggle = el("span", "not configured", "muted");
      }
      return row([
        st.name, st.algorithm || "–", st.mode || "–", s.phase || "–",
        { text: num(s.equity), cls: "num" }, { text: num(s.pnl), cls: "num " + signClass(s.pnl) },
        { text: s.trades ?? "–", cls: "num" }, { text: pct(s.win_rate), cls: "num" }, toggle,
      ]);
    }));
  }

  async function loadTrades() {
    const page = await api("/api/trades?limit=25");
    fillTable("trades-table", page.items.map((t) => row([
      time(t.exit_ms), t.strategy, t.symbol, { text: num(t.quantity, 8), cls: "num" },
      { text: num(t.entry_price), cls: "num" }, { text: num(t.exit_price), cls: "num" },
      { text: num(t.pnl), cls: "num " + signClass(t.pnl) }, t.exit_reason,
    ])));
  }

  function drawChart() {
    const canvas = $("equity-chart");
    const a = lastAnalytics;
    if (!a) return;
    // Total equity only: per-strategy lines on the same axis would flatten it.
    const series = [{
      label: "total equity",
      points: a.overall.equity_curve.map((p) => ({ x: p.ts_ms, y: Number(p.equity) })),
      width: 2.5,
    }];
    const drawn = window.drawLineChart(canvas, series);
    $("equity-empty").classList.toggle("hidden", drawn);
  }

  async function loadAnalytics() {
    lastAnalytics = await api("/api/analytics?max_points=400");
    const m = lastAnalytics.overall.metrics;
    $("stat-winrate").textContent = m.trades ? pct(m.win_rate) : "–";
    // a ratio from a few days says nothing: shown greyed with its sample, as GO/NO-GO does
    const sharpe = $("stat-sharpe");
    sharpe.textContent = m.sharpe === null ? "–"
      : num(m.sharpe) + (m.sharpe_judged ? "" : " (too little data)");
    sharpe.title = `${m.returns} returns over ${num(m.days)} days` +
      (m.sharpe_se === null ? "" : `, standard error ${num(m.sharpe_se)}`);
    $("stat-drawdown").textContent = pct(m.max_drawdown);
    drawChart();
  }

  async function loadLiveVsPaper() {
    window.renderLiveVsPaper($("live-vs-paper"), await api("/api/live-vs-paper?points=400"));
  }

  async function loadAudit() {
    const page = await api("/api/audit?limit=30");
    fillTable("audit-table", page.items.map((e) => row([
      time(e.ts_ms), e.actor, e.action, e.strategy || "–", { text: JSON.stringify(e.detail), cls: "muted" },
    ])));
  }

  async function loadEmergency() {
    const e = await api("/api/emergency");
    const badge = $("emergency-badge");
    badge.textContent = e.action === "none" ? "" : "emergency: " + e.action;
    badge.className = e.action === "none" ? "hidden" : "badge em-" + e.action;
    const box = $("emergency");
    const lines = [el("p", e.action === "none" ? "No emergency action in force." :
      `${e.action} since ${time(e.since_ms)} by ${e.by}${e.reason ? " — " + e.reason : ""}`)];
    for (const [runner, ack] of Object.entries(e.acks)) {
      lines.push(el("div", `${runner}: ${ack.action || "?"} acknowledged ${time(ack.ts_ms)}` +
        (ack.cancelled.length ? `, cancelled ${ack.cancelled.length} order(s)` : ""), "muted"));
    }
    box.replaceChildren(...lines);
  }

  async function loadPreflight() {
    const p = await api("/api/preflight");
    const box = $("preflight");
    const parts = [];
    if (!p.available) parts.push(el("p", "No pre-flight report yet.", "muted"));
    else {
      const r = p.report;
      parts.push(el("p", `${r.status || ""} — ${r.strategy || ""} ${r.mode || ""} ${time(r.ts_ms)}`));
      for (const c of r.checks || []) {
        const d = el("div", null, "check");
        d.appendChild(el("span", c.status, "st " + c.status));
        d.appendChild(el("span", c.name));
        d.appendChild(el("span", c.message, "muted"));
        parts.push(d);
      }
    }
    if (p.validation) {
      const v = p.validation;
      parts.push(el("p", `Latest validation: ${v.verdict || v.result || v.status || ""}`, "muted"));
    }
    box.replaceChildren(...parts);
  }

  async function loadReconciliation() {
    const r = await api("/api/reconciliation");
    const box = $("reconciliation");
    const entries = Object.entries(r.strategies);
    if (!entries.length) { box.replaceChildren(el("p", "No strategies.", "muted")); return; }
    box.replaceChildren(...entries.map(([name, res]) => {
      const d = el("div", null, "check");
      if (!res) {
        d.appendChild(el("span", "–", "st"));
        d.appendChild(el("span", name));
        d.appendChild(el("span", "not reconciled yet", "muted"));
      } else {
        const st = res.status || (res.ok ? "ok" : "mismatch");
        d.appendChild(el("span", st, "st " + (res.ok ? "ok" : "fail")));
        d.appendChild(el("span", name));
        const mm = (res.mismatches || []).length;
        d.appendChild(el("span", `${time(res.ts_ms)} · ${mm} mismatch(es)${res.error ? " · " + res.error : ""}`, "muted"));
      }
      return d;
    }));
  }

  const LOADERS = {
    status: loadStatus, portfolio: loadPortfolio, strategies: loadStrategies, trades: loadTrades,
    analytics: loadAnalytics, audit: loadAudit, emergency: loadEmergency, preflight: loadPreflight,
    reconciliation: loadReconciliation, live: loadLiveVsPaper,
  };
  const EVENT_PANELS = {
    trade: ["trades", "portfolio", "analytics", "strategies"],
    fill: ["portfolio", "strategies"],
    order: ["portfolio"],
    position: ["portfolio"],
    equity: ["portfolio", "analytics", "strategies", "live"],
    strategy: ["strategies", "status", "audit"],
    emergency: ["emergency", "status", "audit", "strategies"],
    preflight: ["preflight"],
    reconciliation: ["reconciliation"],
    desired: ["strategies", "audit"],
  };

  async function load(names) {
    const results = await Promise.allSettled(names.map((n) => LOADERS[n]()));
    const failed = results.find((r) => r.status === "rejected" && r.reason.message !== "signed out");
    showError(failed ? "Could not load: " + failed.reason.message : "");
  }

  function refreshAll() { return load(Object.keys(LOADERS)); }

  // Events arrive in bursts (a candle moves equity, positions, trades at once):
  // collect the panels to refresh and reload each once.
  function schedule(panels) {
    panels.forEach((p) => pending.add(p));
    if (flushTimer) return;
    flushTimer = setTimeout(() => {
      flushTimer = null;
      const names = [...pending];
      pending.clear();
      load(names);
    }, 250);
  }

  // -- live updates -----------------------------------------------------------
  function connectSocket() {
    if (socket) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/ws`);
    socket = ws;
    ws.onopen = () => {
      const { access } = tokens();
      if (authRequired) ws.send(JSON.stringify({ type: "auth", token: access || "" }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "hello") {
        wsBackoff = 500;
        $("live").textContent = "live";
        $("live").classList.add("on");
        return;
      }
      if (msg.type === "resync") { schedule(Object.keys(LOADERS)); return; }
      schedule(EVENT_PANELS[msg.type] || []);
    };
    ws.onclose = async (ev) => {
      socket = null;
      $("live").textContent = "offline";
      $("live").classList.remove("on");
      if (ev.code === 4401 && authRequired) {
        if (!(await refreshTokens())) { clearTokens(); showLogin(); return; }
      }
      setTimeout(connectSocket, wsBackoff);
      wsBackoff = Math.min(wsBackoff * 2, 10000);
    };
  }

  // -- emergency buttons with confirmation -------------------------------------
  const CONFIRM = {
    stop: "Stop ALL trading now? Runners halt and cancel open orders; positions stay open.",
    "close-all": "Close ALL positions at market and stop trading?",
    resume: "Resume trading for all runners?",
  };
  for (const btn of document.querySelectorAll("button[data-action]")) {
    btn.addEventListener("click", () => {
      const action = btn.dataset.action;
      const dlg = $("confirm-dialog");
      $("confirm-text").textContent = CONFIRM[action];
      $("confirm-reason").value = "";
      dlg.returnValue = "";
      dlg.onclose = async () => {
        if (dlg.returnValue !== "ok") return;
        try {
          await api(`/api/emergency/${action}`, { method: "POST", body: { reason: $("confirm-reason").value } });
          await load(["emergency", "status", "audit"]);
        } catch (e) { showError(e.message); }
      };
      dlg.showModal();
    });
  }

  window.addEventListener("resize", drawChart);
  setInterval(() => { if (!$("main-view").classList.contains("hidden")) refreshAll(); }, 30000);

  // -- start ------------------------------------------------------------------
  fetch("/health").then((r) => r.json()).then((h) => {
    authRequired = h.auth_required;
    if (h.state) $("state-where").textContent = "state: " + h.state;
    if (!authRequired || tokens().access) showMain();
    else showLogin();
  }).catch(() => showLogin());
})();
