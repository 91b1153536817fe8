/* voicewatch dashboard: one live connection, toasts, confirm + loading buttons. */
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const handlers = {};
  const vw = (window.vw = {
    csrf,
    /** Listen to a live message type ("event", "alert", ...) from /api/v1/stream. */
    on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    /** fetch() with the CSRF header and JSON by default. */
    async post(url, body) {
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
        credentials: "same-origin",
      });
      let data = null;
      try { data = await res.json(); } catch (e) { /* not JSON */ }
      if (!res.ok) throw new Error((data && data.error) || res.statusText);
      return data;
    },
    toast(title, text, level) {
      const box = document.getElementById("toasts");
      if (!box) return;
      const el = document.createElement("div");
      el.className = "toast " + (level || "info");
      const t = document.createElement("div"); t.className = "t-title"; t.textContent = title;
      const b = document.createElement("div"); b.textContent = text || "";
      el.append(t, b);
      box.appendChild(el);
      setTimeout(() => el.remove(), 8000);
    },
    escape(s) { const d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; },
    /** The event-type cell of an event row (a coloured pill), shared by the log and the feed. */
    typeCell(eventType, kind) {
      const td = document.createElement("td");
      const pill = document.createElement("span");
      pill.className = "pill " + kind;
      pill.textContent = eventType;
      td.appendChild(pill);
      return td;
    },
    /** The artifact cell of an event row: a link to the artifact, or a muted dash. */
    artifactCell(artifactId) {
      const td = document.createElement("td");
      td.className = "mono";
      if (artifactId) {
        const a = document.createElement("a");
        a.href = "/artifacts/" + encodeURIComponent(artifactId);
        a.textContent = artifactId;
        td.appendChild(a);
      } else {
        const none = document.createElement("span");
        none.className = "muted";
        none.textContent = "—";
        td.appendChild(none);
      }
      return td;
    },
  });

  function connect() {
    if (!window.EventSource || !document.body.hasAttribute("data-live")) return;
    const dot = document.getElementById("live-dot");
    const source = new EventSource("/api/v1/stream");
    source.onopen = () => dot && dot.classList.add("on");
    source.onerror = () => dot && dot.classList.remove("on");
    source.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      (handlers[data.type] || []).forEach((fn) => { try { fn(data); } catch (e) { console.warn(e); } });
      (handlers["*"] || []).forEach((fn) => { try { fn(data); } catch (e) { console.warn(e); } });
    };
  }

  vw.on("alert", (data) => {
    const alert = data.alert || {};
    const badge = document.getElementById("alert-badge");
    if (badge && typeof data.active_count === "number") {
      badge.textContent = data.active_count;
      badge.classList.toggle("hidden", data.active_count === 0);
    }
    if (data.change === "raised" || data.change === "escalated") {
      vw.toast("Alert: " + (alert.alert_kind || "").replace(/_/g, " "), alert.message, alert.severity);
    }
  });

  // <button data-confirm="..." data-post="/api/..." data-body='{"k": "v"}'>: confirm, spin, post.
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-post]");
    if (!btn) return;
    ev.preventDefault();
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    const label = btn.textContent;
    btn.disabled = true; btn.classList.add("loading"); btn.textContent = btn.dataset.busy || "Working…";
    try {
      const body = btn.dataset.body ? JSON.parse(btn.dataset.body) : {};
      await vw.post(btn.dataset.post, body);
      vw.toast("Done", btn.dataset.done || label.trim(), "info");
      btn.dispatchEvent(new CustomEvent("vw:done", { bubbles: true }));
      if (btn.dataset.reload !== undefined) setTimeout(() => location.reload(), 600);
    } catch (e) {
      vw.toast("Failed", e.message, "critical");
    } finally {
      btn.disabled = false; btn.classList.remove("loading"); btn.textContent = label;
    }
  });

  document.addEventListener("DOMContentLoaded", connect);
})();
