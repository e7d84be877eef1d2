// netforecast's page: live from the daemon (REST for the last 15 minutes, then
// Server-Sent Events), or static from data embedded by `replay --html`.
// No framework; uPlot draws. `window.nf` counts what arrived (for tests).
"use strict";
(function () {
  const KEEP_S = 900;
  const COLS = ["t", "actual", "forecast", "lower", "upper", "issued", "prob", "rtt_ms", "bif",
    "size", "iat_mean", "iat_std", "delay_grad", "bif_grad", "silent", "mase"];
  // Events: a faint wash over the chart, a strip of the kind's colour on top.
  const KIND_COLOR = { congestion_ahead: "rgba(255,152,48,0.10)", capacity_drop: "rgba(242,73,92,0.14)",
    forecast_degraded: "rgba(138,148,166,0.12)", capture_degraded: "rgba(87,148,242,0.12)",
    link_stall: "rgba(255,255,255,0.14)", zero_window: "rgba(115,191,105,0.12)" };
  const KIND_STRIP = { congestion_ahead: "#ff9830", capacity_drop: "#f2495c", forecast_degraded: "#8a94a6",
    capture_degraded: "#5794f2", link_stall: "#ffffff", zero_window: "#73bf69" };
  const STATIC = window.NF_STATIC || null;
  const nf = window.nf = { windows: 0, updates: 0, events: 0, statuses: 0, redraws: 0, stream: null, connected: false };
  const $ = (id) => document.getElementById(id);
  let data = empty();
  let records = [];        // event records, oldest first
  let spans = [];          // {kind, severity, start, end} in seconds, for the charts
  let status = null;
  let es = null, pollTimer = null;
  const view = { span: 60, follow: true, min: 0, max: 0 };
  let dirty = true, lastDraw = 0;

  function empty() { const d = {}; for (const c of COLS) d[c] = []; return d; }
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  // A live capture's stream is named "live IF"; the page shows IF.
  function plain(name) { return String(name || "").replace(/^live /, ""); }
  function fmt(x, d) { return x === null || x === undefined || !isFinite(x) ? "-" : x.toFixed(d); }
  function hms(sec) {
    const d = new Date(sec * 1000);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function append(cols) {
    if (!cols || !cols.t) return;
    for (const c of COLS) { const a = data[c], b = cols[c]; for (let i = 0; i < b.length; i++) a.push(b[i]); }
    nf.windows += cols.t.length;
    const t = data.t;
    if (!STATIC && t.length) {
      const cut = t[t.length - 1] - KEEP_S;
      let k = 0;
      while (k < t.length && t[k] < cut) k++;
      if (k > 200) for (const c of COLS) data[c].splice(0, k);
    }
    dirty = true;
  }

  // ---- events ----
  function addRecords(recs) {
    const tbody = document.querySelector("#events tbody");
    for (const r of recs) {
      records.push(r);
      nf.events++;
      const e = r.event;
      const start = e.start_ns / 1e9;
      if (r.change === "started") spans.push({ kind: e.kind, stream: e.stream, severity: e.severity, start, end: null });
      else {
        const s = spans.find((x) => x.kind === e.kind && x.stream === e.stream && x.start === start && x.end === null);
        if (s) { s.end = e.end_ns / 1e9; s.severity = e.severity; }
        else spans.push({ kind: e.kind, stream: e.stream, severity: e.severity, start, end: e.end_ns / 1e9 });
      }
      const tr = document.createElement("tr");
      tr.className = "event " + e.kind + " " + e.severity + " " + r.change;
      tr.dataset.start = String(start);
      const sig = e.signals;
      const detail = `${fmt(sig.throughput_mbps, 1)} Mbit/s, RTT ${fmt(sig.rtt_ms, 1)} ms (min ${fmt(sig.rtt_min_ms, 1)}), ` +
        `${Math.round(sig.bif_bytes / 1000)} kB in flight` +
        (sig.capture_lost ? `, ${sig.capture_lost} lost by the capture in the last second` : "") +
        (e.kind === "link_stall" || e.kind === "zero_window" ? `, ${sig.unacked_segments} segments unacknowledged, ${sig.zero_window_segments} zero-window advertisements` : "") +
        (e.forecast_mbps != null ? `, forecast ${fmt(e.forecast_mbps, 1)}` : "") +
        (e.band ? ` [${fmt(e.band[0], 1)}, ${fmt(e.band[1], 1)}]` : "") +
        (e.congestion_prob != null ? `, P ${fmt(e.congestion_prob, 2)}` : "");
      const when = r.change === "ended" && e.end_ns ? e.end_ns / 1e9 : start;
      for (const v of [hms(when), r.change, e.kind.replace(/_/g, " "), e.severity, detail]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      tbody.insertBefore(tr, tbody.firstChild);
    }
    while (tbody.rows.length > 300) tbody.deleteRow(tbody.rows.length - 1);
    // The alerts list follows the records at once (the status catches up within a second).
    if (status && !STATIC) {
      let act = (status.active || []).slice();
      for (const r of recs) {
        const e = r.event, same = (a) => a.kind === e.kind && a.stream === e.stream;
        act = act.filter((a) => !same(a));
        if (r.change === "started") act.push(e);
      }
      status.active = act;
      renderStatus();
    }
    if (records.length > 2000) records = records.slice(-1000);
    if (spans.length > 1000) spans = spans.slice(-500);
    dirty = true;
  }

  // ---- charts ----
  const width = () => Math.max(280, $("charts").clientWidth);
  function drawSpans(u) {
    const ctx = u.ctx, top = u.bbox.top, h = Math.round(8 * devicePixelRatio);
    const [x0, x1] = [u.scales.x.min, u.scales.x.max];
    const last = data.t.length ? data.t[data.t.length - 1] : x1;
    for (const s of spans) {
      if (nf.streamName && plain(s.stream) !== plain(nf.streamName)) continue;
      const a = Math.max(s.start, x0), b = Math.min(s.end === null ? last : s.end, x1);
      if (b < a) continue;
      const l = u.valToPos(a, "x", true), r = u.valToPos(b, "x", true);
      ctx.fillStyle = KIND_COLOR[s.kind] || "rgba(255,255,255,0.2)";
      ctx.fillRect(l, top, Math.max(2, r - l), u.bbox.height);
      ctx.fillStyle = KIND_STRIP[s.kind] || css("--warn");
      const row = { capacity_drop: 0, congestion_ahead: 1, forecast_degraded: 2, capture_degraded: 3,
        link_stall: 0, zero_window: 1 }[s.kind] || 0;
      ctx.fillRect(l, top + row * h, Math.max(2, r - l), h);
    }
  }
  function opts(title, series, axes, extra) {
    return Object.assign({
      title, width: width(), height: window.innerWidth < 600 ? 170 : 220,
      cursor: { sync: { key: "nf" }, drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true, range: () => [view.min, view.max] } },
      legend: { live: true },
      series: [{}].concat(series), axes,
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          view.min = u.posToVal(u.select.left, "x");
          view.max = u.posToVal(u.select.left + u.select.width, "x");
          view.span = view.max - view.min;
          setFollow(false);
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          dirty = true;
        }],
      },
    }, extra || {});
  }
  const axisStyle = () => ({ stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } });
  const charts = [];
  function makeCharts() {
    const ax = axisStyle();
    charts.push(new uPlot(opts("Throughput: actual against the forecast (at its target window, and as issued) with its band", [
      { label: "band upper", stroke: "transparent", points: { show: false }, value: (u, v) => fmt(v, 1) },
      { label: "band lower", stroke: "transparent", points: { show: false }, value: (u, v) => fmt(v, 1) },
      { label: "actual", stroke: css("--actual"), width: 1.5, points: { show: false }, value: (u, v) => fmt(v, 2) },
      { label: "forecast", stroke: css("--forecast"), width: 1.5, points: { show: false }, value: (u, v) => fmt(v, 2) },
      { label: "as issued", stroke: css("--issued"), width: 1, dash: [4, 3], points: { show: false }, value: (u, v) => fmt(v, 2), show: false },
    ], [Object.assign({}, ax), Object.assign({ label: "Mbit/s" }, ax)], {
      bands: [{ series: [1, 2], fill: css("--band") }],
      hooks: Object.assign(opts("", [], []).hooks, { draw: [drawSpans] }),
    }), [[]].concat([[], [], [], [], []]), $("chart-thr")));
    charts.push(new uPlot(opts("Probability the next window is below the threshold", [
      { label: "P(below)", stroke: css("--prob"), width: 1.5, points: { show: false }, value: (u, v) => fmt(v, 2) },
    ], [Object.assign({}, ax), Object.assign({ label: "P" }, ax)], {
      scales: { x: { time: true, range: () => [view.min, view.max] }, y: { range: [0, 1] } },
    }), [[], []], $("chart-prob")));
    charts.push(new uPlot(opts("ACK RTT and bytes in flight", [
      { label: "RTT ms", stroke: css("--rtt"), width: 1.5, points: { show: false }, value: (u, v) => fmt(v, 1) },
      { label: "in flight kB", stroke: css("--bif"), width: 1, scale: "kb", points: { show: false }, value: (u, v) => fmt(v, 0) },
    ], [Object.assign({}, ax), Object.assign({ label: "ms" }, ax), Object.assign({ label: "kB", side: 1, scale: "kb", grid: { show: false } }, ax)]),
      [[], [], []], $("chart-net")));
    for (const c of charts) c.over.addEventListener("dblclick", () => { setFollow(true); dirty = true; });
  }

  function lowerBound(a, x) { let lo = 0, hi = a.length; while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; } return lo; }

  // The windows in view; over two per pixel, each pixel's bucket keeps its
  // lowest and highest actual (and the other series at those windows), so a
  // 15-minute view of 18000 windows draws ~2 points a pixel and loses no peak.
  function visible() {
    const t = data.t;
    if (view.follow || STATIC && !view.max) {
      const end = t.length ? t[t.length - 1] : Date.now() / 1000;
      view.max = end + 0.05;
      view.min = view.max - view.span;
    }
    const lo = lowerBound(t, view.min - 1), hi = lowerBound(t, view.max + 1);
    const px = width(), n = hi - lo, idx = [];
    if (n <= 2 * px) for (let i = lo; i < hi; i++) idx.push(i);
    else {
      const per = n / px, a = data.actual;
      for (let b = 0; b < px; b++) {
        const s = lo + Math.floor(b * per), e = Math.min(hi, lo + Math.floor((b + 1) * per));
        if (e <= s) continue;
        let mi = s, ma = s;
        for (let i = s + 1; i < e; i++) { if (a[i] < a[mi]) mi = i; if (a[i] > a[ma]) ma = i; }
        if (mi === ma) idx.push(mi); else if (mi < ma) idx.push(mi, ma); else idx.push(ma, mi);
      }
    }
    const pick = (c, f) => idx.map((i) => f ? f(data[c][i]) : data[c][i]);
    return { idx, pick };
  }

  function draw() {
    if (!dirty || !charts.length) return;
    dirty = false;
    const { pick } = visible();
    const t = pick("t");
    // The forecast as issued is drawn at the window it was issued at: its lag
    // behind the actual is the phase shift the chart is named for.
    charts[0].setData([t, pick("upper"), pick("lower"), pick("actual"), pick("forecast"), pick("issued")]);
    charts[1].setData([t, pick("prob")]);
    charts[2].setData([t, pick("rtt_ms"), pick("bif", (v) => v / 1000)]);
    nf.redraws++;
    const n = data.t.length;
    if (n) {
      $("now-actual").textContent = fmt(data.actual[n - 1], 2);
      $("next-prob").textContent = fmt(data.prob[n - 1], 2);
      if (STATIC) $("next-forecast").textContent = fmt(data.issued[n - 1], 2);
    }
  }
  function loop(ts) {
    if (ts - lastDraw > 100) { lastDraw = ts; draw(); }
    requestAnimationFrame(loop);
  }

  // ---- status ----
  function renderStatus() {
    const s = status;
    if (!s) return;
    const st = (s.streams || []).find((x) => x.id === nf.stream) || {};
    nf.streamName = st.name;
    $("model").textContent = s.model ? "model " + s.model : "";
    const skill = $("skill");
    skill.textContent = fmt(st.mase_recent, 2);
    skill.className = "v " + (st.mase_recent > 1.05 ? "bad" : st.mase_recent != null ? "ok" : "");
    $("skill-total").textContent = "last minute; since start " + fmt(st.mase_total, 2);
    $("coverage").textContent = st.band_scored ? fmt(100 * st.band_hits / st.band_scored, 1) + " %" : "-";
    const latest = (s.forecast || []).find((f) => f.stream === nf.stream);
    if (latest) {
      $("next-forecast").textContent = fmt(latest.forecast_mbps, 2);
      $("next-band").textContent = latest.lower_mbps != null ? `band ${fmt(latest.lower_mbps, 1)} to ${fmt(latest.upper_mbps, 1)}` : "band: after a minute";
    }
    if (s.health) {
      const cap = s.health.parts.capture;
      const h = $("health");
      h.textContent = s.health.status;
      h.className = "v " + (s.health.status === "ok" ? "ok" : "bad");
      h.title = Object.entries(s.health.parts).filter(([, p]) => !p.ok).map(([n, p]) => n + ": " + p.detail).join("\n");
      $("drops").textContent = `kernel drops ${s.kernel_drops}, windows dropped ${s.windows_dropped}` + (cap && !cap.ok ? "; " + cap.detail : "");
    }
    const ul = $("active");
    ul.textContent = "";
    const act = (s.active || []);
    for (const e of act) {
      const li = document.createElement("li");
      li.className = "alert " + e.kind + " " + e.severity;
      li.textContent = `${e.kind.replace(/_/g, " ")} on ${plain(e.stream)} since ${hms(e.start_ns / 1e9)}`;
      ul.appendChild(li);
    }
    if (!act.length) { const li = document.createElement("li"); li.className = "none"; li.textContent = "no active alert"; ul.appendChild(li); }
    $("alert-count").textContent = act.length ? `(${act.length} active)` : "";
  }
  function setConn(ok, text) {
    nf.connected = ok;
    const c = $("conn");
    c.textContent = text || (ok ? "live" : "reconnecting");
    c.className = "badge " + (ok ? "ok" : "bad");
  }

  // ---- live ----
  function streamsInto(list) {
    const sel = $("stream");
    const ids = list.map((s) => s.id);
    if ([...sel.options].map((o) => o.value).join() !== ids.join()) {
      sel.textContent = "";
      for (const s of list) { const o = document.createElement("option"); o.value = s.id; o.textContent = plain(s.name); sel.appendChild(o); }
      if (nf.stream) sel.value = nf.stream;
    }
  }
  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }
  async function start(id) {
    if (es) { es.close(); es = null; }
    clearTimeout(pollTimer);
    let list;
    try { list = await getJSON("api/v1/streams"); } catch (e) { setConn(false, "no daemon"); pollTimer = setTimeout(() => start(id), 2000); return; }
    streamsInto(list);
    if (!list.length) { setConn(false, "waiting for the first window"); pollTimer = setTimeout(() => start(id), 1000); return; }
    nf.stream = id && list.some((s) => s.id === id) ? id : list[0].id;
    $("stream").value = nf.stream;
    try {
      const cols = await getJSON(`api/v1/streams/${encodeURIComponent(nf.stream)}/windows?since=0`);
      const ev = await getJSON("api/v1/events?since=0");
      data = empty(); records = []; spans = [];
      document.querySelector("#events tbody").textContent = "";
      append(cols);
      addRecords(ev.events);
      status = await getJSON("api/v1/status").catch(() => null);
      if (status) status.forecast = await getJSON("api/v1/forecast").catch(() => []);
      renderStatus();
      es = new EventSource(`api/v1/live?stream=${encodeURIComponent(nf.stream)}&since=${cols.next}&events=${ev.next}`);
    } catch (e) { setConn(false, "reconnecting"); pollTimer = setTimeout(() => start(nf.stream), 2000); return; }
    es.addEventListener("update", (m) => {
      const u = JSON.parse(m.data);
      if (u.windows && u.windows.stream === nf.stream) append(u.windows);
      if (u.events && u.events.length) addRecords(u.events);
      nf.updates++;
    });
    es.addEventListener("status", (m) => { status = JSON.parse(m.data); nf.statuses++; streamsInto(status.streams); renderStatus(); });
    es.onopen = () => setConn(true);
    es.onerror = () => setConn(false);
  }

  // ---- static (replay --html) ----
  function showStatic(id) {
    const s = STATIC.streams.find((x) => x.id === id) || STATIC.streams[0];
    if (!s) return;
    nf.stream = s.id; nf.streamName = s.name;
    data = empty(); records = []; spans = [];
    document.querySelector("#events tbody").textContent = "";
    append(s.columns);
    addRecords(s.events || []);
    const t = data.t;
    view.min = t.length ? t[0] : 0; view.max = t.length ? t[t.length - 1] + 0.05 : 1; view.span = view.max - view.min;
    status = { streams: [s.summary], active: [], forecast: [], model: STATIC.model };
    renderStatus();
    $("health").textContent = "replay"; $("drops").textContent = `${s.summary.windows} windows`;
    dirty = true;
  }

  // The replay report's tables, built as DOM (capture names are text, never markup).
  function table(head, rows) {
    const t = document.createElement("table");
    const tr = t.createTHead().insertRow();
    for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
    const b = t.createTBody();
    for (const r of rows) { const row = b.insertRow(); for (const v of r) row.insertCell().textContent = v; }
    return t;
  }
  function renderReport(r) {
    const box = $("report");
    const h = (text) => { const e = document.createElement("h3"); e.textContent = text; box.appendChild(e); };
    const m = (name, x) => x ? [name, fmt(x.r2, 3), fmt(x.mae_mbps, 3), fmt(x.rmse_mbps, 3), fmt(x.mase, 3), fmt(x.roc_auc, 3), fmt(x.pr_auc, 3)] : null;
    const head = ["forecast", "R²", "MAE Mbit/s", "RMSE Mbit/s", "MASE", "ROC AUC", "PR AUC"];
    h(`All captures: ${r.windows} windows scored, ${r.packets} packets, model ${r.model_version}, threshold ${r.threshold_mbps} Mbit/s`);
    box.appendChild(table(head, [m("published", r.published), m("model", r.model), m("persistence", r.persistence),
      m("mean of last 15", r.mean_last_15), m("EWMA", r.ewma)].filter(Boolean)));
    if (r.per_capture && r.per_capture.length) {
      h("Per capture");
      box.appendChild(table(["capture", "windows", "published MASE", "model MASE", "persistence MAE", "published ROC AUC", "Brier"],
        r.per_capture.map((c) => [c.name, c.windows, fmt(c.scores.published ? c.scores.published.mase : null, 3),
          fmt(c.scores.model.mase, 3), fmt(c.scores.persistence.mae_mbps, 3),
          fmt(c.scores.published ? c.scores.published.roc_auc : null, 3), fmt(c.calibration.brier, 4)])));
    }
    if (r.calibration) {
      const c = r.calibration;
      h(`Calibration of the published probability: Brier ${fmt(c.published.brier, 4)} (prevalence ${fmt(c.brier_prevalence, 4)}, ` +
        `conditional ${fmt(c.brier_conditional, 4)}), ECE ${fmt(c.published.ece, 4)}; the model's Brier ${fmt(c.model.brier, 4)}`);
      box.appendChild(table(["P from", "to", "windows", "mean P", "observed share below"],
        c.published.bins.map((b) => [fmt(b.lo, 1), fmt(b.hi, 1), b.count, fmt(b.mean_prob, 3), fmt(b.observed, 3)])));
    }
    if (r.band) {
      h(`Band: ${r.band.scored} windows, coverage ${r.band.coverage == null ? "-" : fmt(100 * r.band.coverage, 1) + " %"} ` +
        `(aims at ${fmt(100 * r.band.nominal, 0)} %), ${fmt(100 * (r.band.below || 0), 1)} % below, ` +
        `${fmt(100 * (r.band.above || 0), 1)} % above, mean width ${fmt(r.band.mean_width_mbps, 2)} Mbit/s`);
    }
    const hidden = STATIC.streams.filter((s) => s.windows_not_shown > 0);
    for (const s of hidden) h(`${s.name}: the first ${s.windows_not_shown} windows are not in the charts (a report keeps 1,000,000 per capture); the tables count every window`);
  }

  // ---- controls ----
  function setFollow(on) {
    view.follow = on;
    $("follow").classList.toggle("on", on);
  }
  for (const b of document.querySelectorAll("#range button[data-s]")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll("#range button[data-s]")) o.classList.toggle("on", o === b);
      const s = Number(b.dataset.s), mid = (view.min + view.max) / 2;
      view.span = s;
      if (!view.follow) { view.min = mid - s / 2; view.max = mid + s / 2; }
      dirty = true;
    });
  }
  function pan(dir) {
    setFollow(false);
    const d = dir * view.span / 2;
    view.min += d; view.max += d;
    dirty = true;
  }
  $("pan-left").addEventListener("click", () => pan(-1));
  $("pan-right").addEventListener("click", () => pan(1));
  $("follow").addEventListener("click", () => { setFollow(!view.follow || STATIC !== null); dirty = true; });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "TEXTAREA") return;
    if (e.key === "ArrowLeft") pan(-1); else if (e.key === "ArrowRight") pan(1);
  });
  $("stream").addEventListener("change", (e) => STATIC ? showStatic(e.target.value) : start(e.target.value));
  window.addEventListener("resize", () => { for (const c of charts) c.setSize({ width: width(), height: c.height }); dirty = true; });

  if ($("predict-box")) {
    $("predict-fill").addEventListener("click", () => {
      const n = data.t.length;
      if (n < 15) { $("predict-out").textContent = "fewer than 15 windows so far"; return; }
      const seq = [];
      for (let i = n - 15; i < n; i++) {
        seq.push([data.size[i], data.rtt_ms[i] / 1000, data.bif[i], data.iat_mean[i], data.iat_std[i],
          data.actual[i], data.delay_grad[i], data.bif_grad[i], data.silent[i]]);
      }
      $("predict-in").value = JSON.stringify({ sequences: [seq] });
    });
    $("predict-go").addEventListener("click", async () => {
      const out = $("predict-out");
      try {
        const r = await fetch("api/v1/predict" + (nf.stream ? "?stream=" + encodeURIComponent(nf.stream) : ""),
          { method: "POST", headers: { "Content-Type": "application/json" }, body: $("predict-in").value });
        out.textContent = r.status + "\n" + JSON.stringify(await r.json(), null, 1);
      } catch (e) { out.textContent = String(e); }
    });
  }

  makeCharts();
  requestAnimationFrame(loop);
  if (STATIC) {
    document.title = STATIC.title || "netforecast report";
    $("conn").textContent = "replay report";
    if ($("predict-box")) $("predict-box").hidden = true;
    setFollow(false);
    if (STATIC.report) { $("report-box").hidden = false; renderReport(STATIC.report); }
    streamsInto(STATIC.streams.map((s) => ({ id: s.id, name: s.name })));
    showStatic(STATIC.streams.length ? STATIC.streams[0].id : null);
  } else {
    start(null);
  }
})();
