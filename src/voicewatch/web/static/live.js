/* voicewatch live pages (overview, pipeline, alerts): feed rows from the stream,
   throttled refresh of server-rendered fragments, the stage latency chart. */
(function () {
  "use strict";
  const vw = window.vw;
  if (!vw) return;
  const page = document.body.dataset.page || "";
  const region = document.querySelector("[data-refresh]");
  const REFRESH_MS = 2000;

  // --- fragments: fetched at most every 2 s, first one at once -----------------------
  let lastRefresh = 0;
  let timer = null;
  let inflight = false;

  function refreshSoon() {
    if (!region || timer) return;
    timer = setTimeout(refreshNow, Math.max(0, lastRefresh + REFRESH_MS - Date.now()));
  }

  async function refreshNow() {
    timer = null;
    if (!region) return;
    if (inflight) { refreshSoon(); return; }
    inflight = true;
    lastRefresh = Date.now();
    try {
      const res = await fetch(region.dataset.refresh, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!res.ok || res.redirected) return; // signed out or an error: keep what is shown
      const tpl = document.createElement("template");
      tpl.innerHTML = await res.text();
      tpl.content.querySelectorAll("[data-slot]").forEach((fresh) => {
        const old = document.querySelector('[data-slot="' + CSS.escape(fresh.dataset.slot) + '"]');
        if (old) old.replaceWith(fresh);
      });
      updateAgo();
    } catch (e) {
      console.warn("refresh failed", e);
    } finally {
      inflight = false;
    }
  }

  // --- the activity feed -------------------------------------------------------------
  const feed = document.getElementById("feed");

  function utcTime(ms) {
    return new Date(ms).toISOString().slice(11, 19);
  }

  function feedRow(e) {
    const kind = e.kind || "info";
    const tr = document.createElement("tr");
    tr.className = "feed-row fresh kind-" + kind;
    tr.dataset.eventId = e.event_id;
    const time = document.createElement("td");
    time.className = "mono nowrap";
    time.textContent = utcTime(e.timestamp);
    time.title = new Date(e.timestamp).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    const type = vw.typeCell(e.event_type, kind);
    const art = vw.artifactCell(e.artifact_id);
    const details = document.createElement("td");
    details.className = "details";
    details.textContent = e.summary || "";
    tr.append(time, type, art, details);
    return tr;
  }

  function addToFeed(e) {
    if (!feed || !e || !e.event_id) return;
    if (feed.querySelector('tr[data-event-id="' + CSS.escape(e.event_id) + '"]')) return;
    feed.insertBefore(feedRow(e), feed.firstChild);
    const max = parseInt(feed.dataset.max || "20", 10);
    while (feed.children.length > max) feed.lastElementChild.remove();
    const empty = document.getElementById("feed-empty");
    if (empty) empty.classList.add("hidden");
  }

  vw.on("event", (msg) => {
    addToFeed(msg.event);
    if (page === "overview" || page === "pipeline") refreshSoon();
  });

  vw.on("alert", (msg) => {
    if (page === "alerts" && msg.change !== "sync") refreshSoon();
  });

  // An acknowledge or retry button finished: show the new state at once.
  document.addEventListener("vw:done", () => {
    if (page === "alerts") { clearTimeout(timer); timer = null; refreshNow(); }
    else refreshSoon();
  });

  // --- "3m ago" labels stay current ---------------------------------------------------
  function ago(ms) {
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s >= 86400) return Math.floor(s / 86400) + "d ago";
    if (s >= 3600) return Math.floor(s / 3600) + "h ago";
    if (s >= 60) return Math.floor(s / 60) + "m ago";
    return s + "s ago";
  }

  function updateAgo() {
    document.querySelectorAll("[data-since]").forEach((el) => {
      const ms = parseInt(el.dataset.since, 10);
      if (!isNaN(ms)) el.textContent = ago(ms);
    });
  }
  setInterval(updateAgo, 5000);

  // --- the stage latency chart (uPlot) ------------------------------------------------
  function drawChart() {
    const el = document.getElementById("latency-chart");
    const src = document.getElementById("latency-data");
    if (!el || !src || !window.uPlot) return;
    let data;
    try { data = JSON.parse(src.textContent); } catch (e) { return; }
    const unit = el.dataset.unit;
    const fmt = (v) => {
      if (v == null) return "—";
      if (unit === "ms") return v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(1) + " s";
      return String(Math.round(v));
    };
    const hour = (v) => (v == null ? "—" : new Date(v * 1000).toISOString().slice(11, 16) + " UTC");
    const opts = {
      width: Math.max(320, el.clientWidth),
      height: 260,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
      series: [
        { label: "Hour (UTC)", value: (u, v) => hour(v) },
        {
          label: el.dataset.label,
          stroke: "#0f766e",
          width: 2,
          fill: "rgba(15,118,110,0.10)",
          points: { show: true, size: 5 },
          value: (u, v) => fmt(v),
        },
      ],
      axes: [
        {
          label: "Hour (UTC)",
          stroke: "#66788a",
          grid: { stroke: "#eef2f6" },
          ticks: { stroke: "#e3e8ee" },
          values: (u, vals) => vals.map((v) => new Date(v * 1000).toISOString().slice(11, 16)),
        },
        {
          label: el.dataset.label,
          stroke: "#66788a",
          size: 64,
          grid: { stroke: "#eef2f6" },
          ticks: { stroke: "#e3e8ee" },
          values: (u, vals) => vals.map(fmt),
        },
      ],
    };
    const chart = new window.uPlot(opts, [data.x, data.y], el);
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(320, el.clientWidth), height: 260 }));
  }

  function start() {
    updateAgo();
    drawChart();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
