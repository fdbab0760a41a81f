/* charts.js - line charts (uPlot, from npm, compiled into the server) and bar charts
 * (window.kiln.charts).
 *
 * A line chart plots named series against the optimizer step; series need
 * not share steps (they are merged on one axis, gaps left open). Each
 * redraw records on its element what it drew - data-points (points drawn
 * in all), data-series (a JSON list of {label, n, last}, and `of` for a
 * line drawn across the chart from one metric point) - so that a test
 * can check the drawn data, not only that a canvas exists. Vertical
 * markers (elastic events) and a filled band between two series (the
 * target band) are drawn by hooks. Without uPlot (a build without npm) the
 * charts say so and nothing else breaks. The browser's one thread.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h} = kiln.dom;
  const COLORS = ["#1f6fd1", "#d1541f", "#2e9e4f", "#8a3fd1", "#c9a100", "#0f9aa8", "#d12f7a",
                  "#6b6b6b", "#7d5a2e", "#4fa3ff"];

  function available() { return typeof window.uPlot === "function"; }

  /* Merges series [{x: [...], y: [...]}] onto one sorted x axis: [xs, ys0, ys1, ...]. */
  function merge(series) {
    const set = new Set();
    for (const s of series) for (const x of s.x) set.add(x);
    const xs = Array.from(set).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const out = [xs];
    for (const s of series) {
      const ys = new Array(xs.length).fill(null);
      for (let i = 0; i < s.x.length; i++) ys[index.get(s.x[i])] = s.y[i];
      out.push(ys);
    }
    return out;
  }

  /* lineChart(title, {yLabel, height}) -> {el, set(series, opts)}; series:
   * [{label, x, y, dash, color}]; opts: {markers: [x...], band: [lowIdx, highIdx]}. */
  function lineChart(title, opts) {
    opts = opts || {};
    const plot = h("div.plot");
    const note = h("p.muted.chart-note");
    const el = h("figure.chart", {"data-chart": title, "data-points": "0"},
                 h("figcaption", {text: title}), plot, note);
    let u = null, key = "", markers = [], lastSeries = [];

    function record(series, data) {
      let total = 0;
      const info = series.map((s, i) => {
        let n = 0, last = null;
        const ys = data[i + 1];
        for (let k = 0; k < ys.length; k++) if (ys[k] !== null && ys[k] !== undefined) { n++; last = [data[0][k], ys[k]]; }
        total += n;
        return s.of ? {label: s.label, of: s.of, n, last} : {label: s.label, n, last};
      });
      el.dataset.points = String(total);
      el.dataset.series = JSON.stringify(info);
    }

    function set(series, extra) {
      extra = extra || {};
      markers = extra.markers || [];
      lastSeries = series.filter(s => s.x.length > 0);
      if (lastSeries.length === 0) {
        note.textContent = opts.empty || "no points yet";
        el.dataset.points = "0";
        el.dataset.series = "[]";
        if (u) { u.destroy(); u = null; key = ""; }
        return;
      }
      if (!available()) {
        note.textContent = "Charts are not available: this server was built without the chart library (run make deps, then make).";
        record(lastSeries, merge(lastSeries));
        return;
      }
      note.textContent = extra.note || "";
      const data = merge(lastSeries);
      const k = lastSeries.map(s => s.label).join("\u0000") + "|" + (extra.band || "");
      const width = Math.max(300, (plot.clientWidth || el.clientWidth || 560) - 4);
      if (u && k === key) {
        u.setData(data);
      } else {
        if (u) u.destroy();
        key = k;
        const useries = [{label: "step"}].concat(lastSeries.map((s, i) => ({
          label: s.label,
          stroke: s.color || COLORS[i % COLORS.length],
          width: s.width || 1.5,
          dash: s.dash,
          spanGaps: true,
          points: {show: data[0].length < 60},
        })));
        const cfg = {
          width, height: opts.height || 220,
          scales: {x: {time: false}},
          series: useries,
          axes: [{label: "step"}, {label: opts.yLabel || "", size: 60}],
          legend: {live: true},
          cursor: {drag: {x: true, y: false}},
          hooks: {draw: [uu => drawMarkers(uu)]},
        };
        if (extra.band) cfg.bands = [{series: extra.band, fill: "rgba(46,158,79,0.15)"}];
        u = new window.uPlot(cfg, data, plot);
      }
      record(lastSeries, data);
    }

    function drawMarkers(uu) {
      if (!markers.length) return;
      const ctx = uu.ctx;
      ctx.save();
      ctx.strokeStyle = "#b8002e";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 1;
      for (const x of markers) {
        const px = Math.round(uu.valToPos(x, "x", true));
        if (px < uu.bbox.left || px > uu.bbox.left + uu.bbox.width) continue;
        ctx.beginPath();
        ctx.moveTo(px, uu.bbox.top);
        ctx.lineTo(px, uu.bbox.top + uu.bbox.height);
        ctx.stroke();
      }
      ctx.restore();
      el.dataset.markers = String(markers.length);
    }

    return {el, set, destroy() { if (u) u.destroy(); u = null; }};
  }

  /* Horizontal bars, two per row (before and after): rows [{label, before, after}]. */
  function barPairs(title, rows, unit) {
    const max = Math.max(1, ...rows.map(r => Math.max(r.before || 0, r.after || 0)));
    const list = h("div.bars", {role: "list"});
    for (const r of rows) {
      const b = h("div.bar-b"), a = h("div.bar-a");
      b.style.width = (100 * (r.before || 0) / max).toFixed(1) + "%";
      a.style.width = (100 * (r.after || 0) / max).toFixed(1) + "%";
      list.appendChild(h("div.bar-row", {role: "listitem", "data-layer": r.label,
                                         "data-before": r.before, "data-after": r.after},
        h("span.bar-label", {text: r.label, title: r.label}),
        h("span.bar-track", {}, b, a),
        h("span.bar-num", {text: r.after + " / " + r.before + (unit ? " " + unit : "")})));
    }
    return h("figure.chart.barchart", {"data-chart": title, "data-bars": rows.length},
             h("figcaption", {}, title + " ", h("span.key.key-b", {text: "before"}), " ",
               h("span.key.key-a", {text: "after"})),
             list);
  }

  kiln.charts = {lineChart, barPairs, merge, available, COLORS};
})(window.kiln);
