/* dom.js - the dashboard's DOM helpers and formatting (window.kiln.dom).
 *
 * Every element the dashboard shows is made here with createElement and
 * textContent: no HTML is ever built from strings, so a job name, metric
 * name or log line from the API can only ever be text. Links get an href
 * only when it is a path on this server or a #/ route. No state; the
 * browser's one thread.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  /* h("tag.class", {attr: value, onclick: fn, text: "..."}, child...) -> element.
   * Children are elements, strings (as text) or arrays of those; null is skipped. */
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split(".");
    const el = document.createElement(tag || "div");
    if (classes.length) el.className = classes.join(" ");
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "href") el.setAttribute("href", safeHref(v));
      else if (k === "value") el.value = v;
      else if (k === "checked" || k === "disabled" || k === "selected" || k === "hidden") el[k] = !!v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    add(el, children);
    return el;
  }

  function add(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) add(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  /* Only this server's paths and the dashboard's own routes: never javascript: or another host. */
  function safeHref(v) {
    const s = String(v);
    if (s.startsWith("#/") || (s.startsWith("/") && !s.startsWith("//"))) return s;
    return "#/";
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function replace(el, ...children) {
    clear(el);
    add(el, children);
    return el;
  }

  /* Numbers: integers as they are, small ones with 4 significant digits. */
  function num(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return String(v);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 1) return v.toFixed(3).replace(/\.?0+$/, "");
    return v.toPrecision(4);
  }

  function bytes(n) {
    if (typeof n !== "number") return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
  }

  function time(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleString("en-GB", {hour12: false});
  }

  function ago(iso) {
    if (!iso) return "";
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!isFinite(s)) return "";
    if (s < 60) return Math.max(0, Math.round(s)) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return (s / 3600).toFixed(1) + " h ago";
    return (s / 86400).toFixed(1) + " d ago";
  }

  function duration(a, b) {
    if (!a) return "–";
    const s = ((b ? new Date(b) : new Date()) - new Date(a)) / 1000;
    if (!isFinite(s)) return "–";
    if (s < 120) return s.toFixed(0) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(2) + " h";
  }

  const ACTIVE = ["QUEUED", "STARTING", "RUNNING", "RESTARTING", "CANCELLING"];
  const TERMINAL = ["SUCCEEDED", "FAILED", "CANCELLED"];

  function stateBadge(state) {
    return h("span.state.st-" + String(state).replace(/[^A-Z]/g, ""), {text: state});
  }

  function progressBar(p, label) {
    const f = Math.max(0, Math.min(1, (p && p.fraction) || 0));
    const bar = h("div.bar-fill");
    bar.style.width = (f * 100).toFixed(1) + "%";
    return h("div.progress", {role: "progressbar", "aria-label": label || "progress",
                              "aria-valuemin": "0", "aria-valuemax": "100",
                              "aria-valuenow": (f * 100).toFixed(0)},
             h("div.bar", {}, bar), h("span.pct", {text: (f * 100).toFixed(0) + "%"}));
  }

  /* A labelled form control: label text, then the control, then an error slot. */
  function field(label, control, hint) {
    const id = control.id || ("f-" + Math.random().toString(36).slice(2));
    control.id = id;
    const err = h("span.field-error", {id: id + "-err", role: "alert"});
    control.setAttribute("aria-describedby", id + "-err");
    return h("div.field", {}, h("label", {for: id, text: label}), control,
             hint ? h("span.hint", {text: hint}) : null, err);
  }

  function table(headers, rows, caption) {
    return h("table", {},
             caption ? h("caption", {text: caption}) : null,
             h("thead", {}, h("tr", {}, headers.map(t => h("th", {scope: "col", text: t})))),
             h("tbody", {}, rows));
  }

  /* A JSON value shown as indented text. */
  function jsonBlock(v, label) {
    return h("pre.json", {tabindex: "0", "aria-label": label || "JSON", text: JSON.stringify(v, null, 2)});
  }

  kiln.dom = {h, add, clear, replace, num, bytes, time, ago, duration, stateBadge, progressBar,
              field, table, jsonBlock, ACTIVE, TERMINAL};
})(window.kiln);
