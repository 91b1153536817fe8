/* voicewatch data pages: artifacts grid rows, event log (payload, load more, live), metrics charts.
 * Our own code; charts by the vendored uPlot. Everything from the server is shown with
 * textContent, or is HTML the server rendered with autoescaping. */
(function () {
  "use strict";
  const vw = window.vw || {};

  function readJSON(id) {
    const el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  async function fetchHTML(url) {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    return res.text();
  }

  /* ---------------------------------------------------------------- artifacts grid */
  function initArtifactGrid() {
    const grid = document.getElementById("artifact-grid");
    if (!grid) return;
    grid.addEventListener("click", async (ev) => {
      if (ev.target.closest("a, button, input, select")) return;
      const row = ev.target.closest("tr.artifact-row");
      if (!row) return;
      const detail = row.nextElementSibling;
      if (!detail || !detail.classList.contains("expand-row")) return;
      const open = detail.classList.toggle("hidden") === false;
      row.setAttribute("aria-expanded", open ? "true" : "false");
      row.classList.toggle("open", open);
      if (!open || detail.dataset.loaded) return;
      const body = detail.querySelector(".expand-body");
      try {
        body.innerHTML = await fetchHTML(row.dataset.expand); // server-rendered, autoescaped
        body.classList.remove("muted");
        detail.dataset.loaded = "1";
      } catch (e) {
        body.textContent = "Could not load this artifact: " + e.message;
      }
    });
  }

  /* ---------------------------------------------------------------- event log */
  function eventDetails(e) {
    const m = e.metadata || {};
    const parts = [];
    if (m.claim_count != null) parts.push(m.claim_count + " claims");
    if (m.entity_count != null) parts.push(m.entity_count + " entities");
    if (m.disambiguation_count) parts.push(m.disambiguation_count + " need review");
    if (m.draft_count != null) parts.push(m.draft_count + " drafts");
    if (m.confidence_score != null) parts.push("confidence " + Number(m.confidence_score).toFixed(2));
    if (m.transcript_word_count != null) parts.push(m.transcript_word_count + " words");
    if (m.transcript_duration != null) parts.push(Number(m.transcript_duration).toFixed(0) + "s audio");
    if (m.retry_attempt != null) parts.push("attempt " + m.retry_attempt);
    if (e.new_status) parts.push((e.previous_status || "—") + " → " + e.new_status);
    if (m.ai_cost != null && !/^budget_/.test(e.event_type)) parts.push("$" + Number(m.ai_cost).toFixed(4));
    if (e.error_code) parts.push("[" + e.error_code + "]");
    if (e.error_message) parts.push(String(e.error_message));
    return parts.join(" · ");
  }

  function fmtDuration(ms) {
    if (ms == null) return "—";
    ms = Number(ms);
    if (ms < 1000) return ms.toFixed(0) + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function fmtTs(ms) {
    const d = new Date(Number(ms));
    return isNaN(d) ? "—" : d.toISOString().slice(0, 19).replace("T", " ");
  }

  function matches(cfg, e) {
    if (cfg.event_types.length && cfg.event_types.indexOf(e.event_type) < 0) return false;
    if (cfg.pipeline_stage && e.pipeline_stage !== cfg.pipeline_stage) return false;
    if (cfg.organization_id && e.organization_id !== cfg.organization_id) return false;
    if (cfg.artifact_id && e.artifact_id !== cfg.artifact_id) return false;
    if (cfg.errors_only && cfg.failure_types.indexOf(e.event_type) < 0 && !e.error_code && !e.error_message) return false;
    if (cfg.since != null && Number(e.timestamp) < cfg.since) return false;
    if (cfg.until != null && Number(e.timestamp) >= cfg.until) return false;
    return true;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null || text === "" ? "—" : String(text);
    return td;
  }

  function eventRow(cfg, e) {
    const kind = cfg.kinds[e.event_type] || "info";
    const tr = document.createElement("tr");
    tr.className = "clickable event-row live-new " + kind;
    tr.tabIndex = 0;
    tr.dataset.eventId = e.event_id || "";
    tr.dataset.eventType = e.event_type || "";
    const payload = Object.assign({}, e);
    delete payload.kind; delete payload.id; // added by the stream, not part of the event
    tr.dataset.payload = JSON.stringify(payload);
    const ts = cell(fmtTs(e.timestamp), "mono nowrap");
    ts.title = fmtTs(e.timestamp) + " UTC";
    const type = vw.typeCell(e.event_type, kind);
    const art = vw.artifactCell(e.artifact_id);
    tr.append(
      ts, type, cell(e.pipeline_stage), art,
      cell(cfg.org_names[e.organization_id] || e.organization_id),
      cell(e.duration_ms == null ? "—" : fmtDuration(e.duration_ms), "num mono"),
      cell(eventDetails(e), "details"),
    );
    return tr;
  }

  function initEventLog() {
    const table = document.getElementById("event-log");
    if (!table) return;
    const tbody = document.getElementById("event-rows");
    const dialog = document.getElementById("event-dialog");
    const cfg = readJSON("event-live-config") || { event_types: [], failure_types: [], kinds: {}, org_names: {} };

    function openPayload(row) {
      let payload = row.dataset.payload;
      try { payload = JSON.stringify(JSON.parse(payload), null, 2); } catch (e) { /* show as is */ }
      document.getElementById("event-dialog-title").textContent = row.dataset.eventType || "Event";
      document.getElementById("event-dialog-body").textContent = payload;
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    }
    tbody.addEventListener("click", (ev) => {
      if (ev.target.closest("a, button")) return;
      const row = ev.target.closest("tr.event-row");
      if (row) openPayload(row);
    });
    tbody.addEventListener("keydown", (ev) => {
      const row = ev.target.closest("tr.event-row");
      if (row && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); openPayload(row); }
    });
    dialog.addEventListener("click", (ev) => { if (ev.target === dialog) dialog.close(); });

    const more = document.getElementById("load-more");
    function takeMarker() {
      const marker = tbody.querySelector("tr.next-marker");
      const next = marker ? marker.dataset.next : null;
      if (marker) marker.remove();
      return next;
    }
    takeMarker();
    more.addEventListener("click", async (ev) => {
      ev.preventDefault();
      const href = more.getAttribute("href");
      if (!href || href === "#") return;
      more.classList.add("loading");
      try {
        const html = await fetchHTML(href + "&fragment=rows");
        const tpl = document.createElement("template");
        tpl.innerHTML = "<table><tbody>" + html + "</tbody></table>";
        const rows = tpl.content.querySelectorAll("tbody > tr");
        rows.forEach((r) => { if (!r.dataset.eventId || !tbody.querySelector('tr[data-event-id="' + CSS.escape(r.dataset.eventId) + '"]')) tbody.appendChild(r); });
        const next = takeMarker();
        if (next) more.setAttribute("href", next); else more.classList.add("hidden");
      } catch (e) {
        if (vw.toast) vw.toast("Could not load more", e.message, "critical");
      } finally {
        more.classList.remove("loading");
      }
    });

    if (cfg.paused || !vw.on) return;
    vw.on("event", (msg) => {
      const e = (msg && (msg.event || msg.item)) || msg;
      if (!e || !e.event_type || !matches(cfg, e)) return;
      if (e.event_id && tbody.querySelector('tr[data-event-id="' + CSS.escape(e.event_id) + '"]')) return;
      tbody.insertBefore(eventRow(cfg, e), tbody.firstChild);
      const empty = document.getElementById("events-empty");
      if (empty) empty.classList.add("hidden");
      while (tbody.children.length > 500) tbody.lastChild.remove();
    });
  }

  /* ---------------------------------------------------------------- metrics charts */
  const COLORS = { transcription: "#2563eb", claims_extraction: "#0f766e", entity_resolution: "#d97706", draft_generation: "#7c3aed" };
  const STAGE_LABELS = { transcription: "Transcription", claims_extraction: "Claims", entity_resolution: "Resolution", draft_generation: "Drafts" };

  function chartWidth(el) { return Math.max(280, Math.floor(el.clientWidth || el.parentElement.clientWidth || 600)); }

  function baseOpts(el, yLabel, yFmt, time) {
    const opts = {
      width: chartWidth(el),
      height: 230,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: time !== false } },
      axes: [
        { stroke: "#66788a", grid: { stroke: "#eef2f6" }, label: time === false ? "confidence" : "time (UTC)", labelSize: 18 },
        { stroke: "#66788a", grid: { stroke: "#eef2f6" }, label: yLabel, labelSize: 18, size: 60, values: (u, vals) => vals.map(yFmt) },
      ],
      series: [{ label: time === false ? "band" : "period (UTC)" }],
    };
    if (time !== false && window.uPlot && uPlot.tzDate) opts.tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
    if (time === false) opts.series[0].value = (u, v) => (v == null ? "—" : (v - 0.05).toFixed(1) + "–" + (v + 0.05).toFixed(1));
    return opts;
  }

  function bars(size) {
    return window.uPlot && uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [size || 0.6, 40], gap: 2 }) : undefined;
  }

  function draw(id, opts, data) {
    const el = document.getElementById(id);
    if (!el) return null;
    opts.width = chartWidth(el);
    return new uPlot(opts, data, el);
  }

  const num = (v) => (v == null ? "—" : String(Math.round(v * 100) / 100));

  function initMetrics() {
    const data = readJSON("metrics-data");
    if (!data || !document.getElementById("charts") || !window.uPlot) return;
    const x = data.x;
    const charts = [];

    // throughput: completed and failed artifacts per period, as bars
    {
      const opts = baseOpts(document.getElementById("chart-throughput"), "artifacts", num);
      opts.series.push(
        { label: "received", stroke: "#94a3b8", width: 1, dash: [4, 3], value: (u, v) => num(v) },
        { label: "completed", stroke: "#16a34a", fill: "rgba(22,163,74,.45)", paths: bars(0.5), points: { show: false }, value: (u, v) => num(v) },
        { label: "failed", stroke: "#dc2626", fill: "rgba(220,38,38,.55)", paths: bars(0.25), points: { show: false }, value: (u, v) => num(v) },
      );
      charts.push(draw("chart-throughput", opts, [x, data.received, data.completed, data.failed]));
    }

    // latency by stage, stacked: each series is drawn as the cumulative sum, the legend shows its own value
    {
      const stages = Object.keys(data.latency);
      const raw = stages.map((s) => data.latency[s].map((v) => v || 0));
      const stacked = [];
      raw.forEach((arr, i) => stacked.push(arr.map((v, j) => v + (i ? stacked[i - 1][j] : 0))));
      const opts = baseOpts(document.getElementById("chart-latency"), "avg latency", fmtDuration);
      // draw the biggest stack first so each smaller one paints over it
      const order = stages.map((s, i) => i).reverse();
      order.forEach((i) => {
        const stage = stages[i];
        opts.series.push({
          label: STAGE_LABELS[stage] || stage,
          stroke: COLORS[stage] || "#64748b",
          fill: (COLORS[stage] || "#64748b") + "cc",
          width: 1,
          paths: x.length > 1 ? undefined : bars(0.5),
          value: (u, v, si, idx) => (idx == null ? "—" : fmtDuration(raw[i][idx])),
        });
      });
      charts.push(draw("chart-latency", opts, [x, ...order.map((i) => stacked[i])]));
    }

    // error rate: overall and per stage, as lines (percent)
    {
      const pct = (v) => (v == null ? "—" : (v * 100).toFixed(1) + "%");
      const opts = baseOpts(document.getElementById("chart-errors"), "failure rate", (v) => (v * 100).toFixed(0) + "%");
      opts.scales.y = { range: (u, min, max) => [0, Math.max(0.05, max * 1.15)] };
      opts.series.push({ label: "overall", stroke: "#dc2626", width: 2, value: (u, v) => pct(v), points: { show: x.length < 3 } });
      const stages = Object.keys(data.stage_failure_rate);
      stages.forEach((s) => opts.series.push({ label: STAGE_LABELS[s] || s, stroke: COLORS[s] || "#64748b", width: 1, dash: [5, 4], value: (u, v) => pct(v), points: { show: x.length < 3 } }));
      charts.push(draw("chart-errors", opts, [x, data.failure_rate, ...stages.map((s) => data.stage_failure_rate[s])]));
    }

    // confidence histogram: bands of 0.1
    {
      const c = data.confidence;
      const opts = baseOpts(document.getElementById("chart-confidence"), "notes", num, false);
      opts.scales.x = { time: false, range: [0, 1] };
      opts.axes[0].values = (u, vals) => vals.map((v) => v.toFixed(1));
      opts.series.push(
        { label: "transcript", stroke: "#2563eb", fill: "rgba(37,99,235,.45)", paths: bars(0.4), points: { show: false }, value: (u, v) => num(v) },
        { label: "claims (avg per note)", stroke: "#0f766e", fill: "rgba(15,118,110,.45)", paths: bars(0.2), points: { show: false }, value: (u, v) => num(v) },
      );
      charts.push(draw("chart-confidence", opts, [c.bins, c.transcript, c.claims]));
    }

    // cost trend: area
    {
      const money = (v) => (v == null ? "—" : "$" + (v < 0.01 && v > 0 ? v.toFixed(4) : v.toFixed(2)));
      const opts = baseOpts(document.getElementById("chart-cost"), "USD", money);
      opts.scales.y = { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 0.01] };
      opts.series.push({ label: "AI cost", stroke: "#7c3aed", fill: "rgba(124,58,237,.2)", width: 2, value: (u, v) => money(v), points: { show: x.length < 3 }, paths: x.length > 1 ? undefined : bars(0.5) });
      charts.push(draw("chart-cost", opts, [x, data.cost]));
    }

    let timer = null;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => charts.forEach((u) => u && u.setSize({ width: chartWidth(u.root.parentElement), height: 230 })), 150);
    });
  }

  function init() { initArtifactGrid(); initEventLog(); initMetrics(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
