/* app.js - the dashboard's router, the pools and compare views, and start-up (window.kiln.app).
 *
 * Routes (the part after #): / (jobs, with filters as a query), /jobs/ID,
 * /submit, /compare?ids=a,b, /pools. Each view is a function that fills
 * <main> and returns its clean-up (streams closed, timers stopped), called
 * when the route changes. Loaded last (after dom, api, charts, jobs, job,
 * submit). The browser's one thread.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h, replace, num, time, table, ACTIVE} = kiln.dom;
  const {call, get} = kiln.api;
  let cleanup = null;

  function live(text) {
    const el = document.getElementById("live");
    if (el) el.textContent = text ? "● " + text : "";
  }

  /* ---- pools ---- */

  function pools(main) {
    const body = h("div");
    let timer = null, gone = false;
    async function refresh() {
      const r = await call("GET", "/api/v1/workers");
      if (gone) return;
      if (!r.ok) { kiln.api.banner("Pools: " + kiln.api.errorText(r.body)); return; }
      const ws = r.body.workers || [];
      const mem = ws.some(w => typeof w.memory_bytes === "number" || typeof w.memory_mb === "number");
      const heads = ["pool", "state", "ranks", "hosts", "cores"].concat(mem ? ["memory"] : [], ["heartbeat", "current jobs", "version", "connected"]);
      replace(body, ws.length === 0 ? h("p.muted", {text: "No pool has connected since the server started."}) :
        table(heads, ws.map(w => h("tr", {"data-pool": w.id},
          h("td.mono", {text: w.id}), h("td", {}, h("span.pool-" + String(w.state).replace(/[^a-z]/g, ""), {text: w.state})),
          h("td.num", {text: w.ranks + (w.state === "busy" && typeof w.free_ranks === "number" ? " (" + w.free_ranks + " free)" : "")}),
          h("td", {text: (w.hosts || []).join(", ")}), h("td.num", {text: w.cores}),
          mem ? h("td.num", {text: typeof w.memory_bytes === "number" ? kiln.dom.bytes(w.memory_bytes) : num(w.memory_mb) + " MB"}) : null,
          h("td.num", {text: num(w.last_heartbeat_age_s) + " s ago"}),
          h("td", {}, ...currentJobs(w)),
          h("td.small", {text: w.version}), h("td.small", {text: time(w.connected_at)})))));
      timer = setTimeout(refresh, 3000);
    }
    replace(main, h("h2", {tabindex: "-1", text: "Worker pools"}), body);
    refresh();
    return () => { gone = true; clearTimeout(timer); };
  }

  /* The jobs a pool runs (several at once on a split of its ranks): links, each with its
   * attempt and the ranks it holds; "–" for none. */
  function currentJobs(w) {
    const jobs = w.current_jobs || (w.current_job ? [w.current_job] : []);
    if (jobs.length === 0) return ["–"];
    const out = [];
    jobs.forEach((j, i) => {
      if (i > 0) out.push(h("br"));
      out.push(h("a", {href: "#/jobs/" + encodeURIComponent(j.job_id), text: j.job_id}));
      out.push(" #" + j.attempt + (typeof j.ranks === "number" ? " (" + j.ranks + (j.ranks === 1 ? " rank)" : " ranks)") : ""));
    });
    return out;
  }

  /* ---- compare ---- */

  function compare(main, params) {
    const ids = (params.ids || "").split(",").map(s => s.trim()).filter(Boolean);
    const chart = kiln.charts.lineChart("Compare", {yLabel: ""});
    const metricSel = h("select", {id: "compare-metric"});
    const jobsTable = h("div");
    const data = new Map(); /* id -> {job, series: Map(name -> {x, y})} */
    let gone = false;

    function draw() {
      const name = metricSel.value;
      const series = [];
      let i = 0;
      for (const [id, d] of data) {
        const s = d.series.get(name);
        if (s) series.push({label: d.job.name + " (" + id.slice(-6) + ")", x: s.x, y: s.y, color: kiln.charts.COLORS[i % 10]});
        i++;
      }
      chart.el.querySelector("figcaption").textContent = name || "Compare";
      chart.set(series, {});
    }

    async function load() {
      for (const id of ids) {
        try {
          const job = await get("/api/v1/jobs/" + encodeURIComponent(id));
          const m = await get("/api/v1/jobs/" + encodeURIComponent(id) + "/metrics?max_points=400&limit=100000");
          const series = new Map();
          for (const p of m.points || []) {
            if (p.value === null) continue;
            if (!series.has(p.name)) series.set(p.name, {x: [], y: []});
            const s = series.get(p.name);
            s.x.push(p.step);
            s.y.push(p.value);
          }
          for (const s of series.values()) {
            const order = s.x.map((x, i) => i).sort((a, b) => s.x[a] - s.x[b]);
            s.x = order.map(i => s.x[i]);
            s.y = order.map(i => s.y[i]);
          }
          data.set(id, {job, series});
        } catch (e) {
          kiln.api.banner(e.message);
        }
      }
      if (gone) return;
      const names = new Map();
      for (const d of data.values()) for (const n of d.series.keys()) names.set(n, (names.get(n) || 0) + 1);
      const sorted = Array.from(names.keys()).sort((a, b) => (names.get(b) - names.get(a)) || a.localeCompare(b));
      const pref = ["test/top1", "retrain/test/top1", "train/loss", "retrain/train/loss"].find(n => names.has(n)) || sorted[0];
      replace(metricSel, sorted.map(n => h("option", {value: n, text: n + " (" + names.get(n) + " jobs)", selected: n === pref})));
      const resultKeys = Array.from(new Set(Array.from(data.values()).flatMap(d => Object.keys(d.job.result || {})
        .filter(k => typeof d.job.result[k] === "number")))).slice(0, 5);
      replace(jobsTable, table(["job", "type", "state", "params", "MFLOPs"].concat(resultKeys),
        Array.from(data.entries()).map(([id, d]) => h("tr", {"data-id": id},
          h("td", {}, h("a", {href: "#/jobs/" + encodeURIComponent(id), text: d.job.name})), h("td", {text: d.job.type}),
          h("td", {}, kiln.dom.stateBadge(d.job.state)), h("td.num", {text: num(d.job.params)}), h("td.num", {text: num(d.job.mflops)}),
          resultKeys.map(k => h("td.num", {text: num((d.job.result || {})[k])}))))));
      draw();
    }

    metricSel.addEventListener("change", draw);
    replace(main, h("h2", {tabindex: "-1", text: "Compare jobs"}),
      ids.length < 2 ? h("p.muted", {}, "Select two or more jobs in the ", h("a", {href: "#/", text: "job list"}), " and press Compare selected.") : null,
      jobsTable, kiln.dom.field("Metric", metricSel), chart.el);
    if (ids.length) load();
    return () => { gone = true; chart.destroy(); };
  }

  /* ---- routing ---- */

  function route() {
    if (cleanup) { try { cleanup(); } catch (_) { /* a view's clean-up never stops the next */ } }
    cleanup = null;
    kiln.api.banner("");
    live("");
    const main = document.getElementById("main");
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = hash.split("?");
    const params = Object.fromEntries(new URLSearchParams(qs || ""));
    let m, nav = "jobs";
    if ((m = /^\/jobs\/([A-Za-z0-9_-]+)$/.exec(path))) { cleanup = kiln.views.job(main, m[1]); nav = ""; }
    else if (path === "/submit") { cleanup = kiln.views.submit(main, params); nav = "submit"; }
    else if (path === "/compare") { cleanup = compare(main, params); nav = "compare"; }
    else if (path === "/pools") { cleanup = pools(main); nav = "pools"; }
    else cleanup = kiln.views.jobs(main, params);
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    const h2 = main.querySelector("h2");
    if (h2 && document.activeElement && document.activeElement.tagName === "A") h2.focus();
  }

  kiln.app = {live, route};
  window.addEventListener("hashchange", route);
  route();
})(window.kiln);
