/* job.js - one job's page (window.kiln.views.job).
 *
 * The header (state, progress, cancel, delete), the charts, for prune and
 * adapt jobs the search (expected MFLOPs against the target band, top-1 of
 * the max/min/expected sub-nets, per-stage expected depth with elastic
 * events marked, per-layer widths before and after from search.json or
 * report.json), the state history with reasons, attempts, logs with
 * follow, artifacts, lineage (init_from, after, when present) and the
 * spec with its defaults. History comes from max_points-downsampled
 * metrics; after that one event stream (/jobs/{id}/events, from the
 * cursor of what was read) appends points and log lines as they come, and
 * a state event reloads the job. When a series grows past 4 x MAX_POINTS
 * the history is read again, downsampled. The browser's one thread.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h, replace, num, bytes, time, duration, stateBadge, progressBar, table, jsonBlock, ACTIVE, TERMINAL} = kiln.dom;
  const {call, get} = kiln.api;
  const MAX_POINTS = 400, MAX_LOG_LINES = 5000;

  /* Which chart a metric belongs to, by its name. */
  function groupOf(name) {
    if (name.startsWith("target/")) return "target";
    if (/expected_depth\//.test(name)) return "depth";
    if (/elastic\//.test(name)) return "elastic";
    if (/(^|\/)(expected_mflops|expected_net_mflops|supernet_mflops)$/.test(name)) return "mflops";
    if (/test\/top1_(max|min|expected)$/.test(name)) return "subnets";
    if (/p_mean\//.test(name)) return "pmean";
    if (/(^|\/)throughput$/.test(name)) return "throughput";
    if (/(^|\/)(arch\/)?lr$/.test(name)) return "lr";
    if (/(top1|acc)$/.test(name)) return "accuracy";
    if (/loss$/.test(name) && !/flops_loss$/.test(name)) return "loss";
    return "other";
  }

  function view(main, id) {
    let job = null, gone = false, stream = null, reloadTimer = null, drawTimer = null, reloading = false;
    const series = new Map(); /* name -> {x: [], y: []} sorted by step */
    let seqHigh = 0;          /* metric seqs up to here are in `series` */
    let logFollow = true, logCount = 0;

    const title = h("h2", {tabindex: "-1", text: "Job " + id});
    const head = h("section.job-head", {"aria-label": "summary"});
    const charts = {
      loss: kiln.charts.lineChart("Loss", {yLabel: "loss"}),
      accuracy: kiln.charts.lineChart("Accuracy", {yLabel: "top-1"}),
      lr: kiln.charts.lineChart("Learning rate", {yLabel: "lr"}),
      throughput: kiln.charts.lineChart("Throughput", {yLabel: "images/s"}),
    };
    const search = {
      mflops: kiln.charts.lineChart("Expected MFLOPs and the target band", {yLabel: "MFLOPs"}),
      subnets: kiln.charts.lineChart("Top-1 of the max, min and expected sub-nets", {yLabel: "top-1"}),
      depth: kiln.charts.lineChart("Expected depth per stage (elastic events marked)", {yLabel: "blocks"}),
    };
    const widths = h("div.widths", {}, h("p.muted", {text: "Per-layer widths appear when the search has chosen its network."}));
    const searchSection = h("section", {id: "search", "aria-labelledby": "search-h", hidden: true},
      h("h3", {id: "search-h", text: "Search"}), h("div.grid2", {}, search.mflops.el, search.subnets.el),
      h("div.grid2", {}, search.depth.el, widths));
    const history = h("div");
    const attempts = h("div");
    const artifacts = h("div");
    const lineage = h("section", {id: "lineage", hidden: true, "aria-labelledby": "lineage-h"}, h("h3", {id: "lineage-h", text: "Lineage"}));
    const spec = h("div");
    const logBox = h("div.logs", {id: "logs", role: "log", tabindex: "0", "aria-label": "log lines"});
    const followBox = h("input", {type: "checkbox", id: "log-follow", checked: true});
    followBox.addEventListener("change", () => { logFollow = followBox.checked; if (logFollow) logBox.scrollTop = logBox.scrollHeight; });
    const other = h("div.other");

    replace(main, title, head,
      h("section", {id: "charts", "aria-labelledby": "charts-h"}, h("h3", {id: "charts-h", text: "Metrics"}),
        h("div.grid2", {}, charts.loss.el, charts.accuracy.el, charts.lr.el, charts.throughput.el), other),
      searchSection,
      h("section", {id: "history", "aria-labelledby": "history-h"}, h("h3", {id: "history-h", text: "State history"}), history),
      h("section", {id: "attempts", "aria-labelledby": "attempts-h"}, h("h3", {id: "attempts-h", text: "Attempts"}), attempts),
      h("section", {id: "log-section", "aria-labelledby": "logs-h"}, h("h3", {id: "logs-h", text: "Logs"}),
        h("div.toolbar", {}, h("label", {for: "log-follow"}, followBox, " follow")), logBox),
      h("section", {id: "artifacts", "aria-labelledby": "art-h"}, h("h3", {id: "art-h", text: "Artifacts"}), artifacts),
      lineage,
      h("section", {id: "spec", "aria-labelledby": "spec-h"}, h("h3", {id: "spec-h", text: "Spec (with defaults)"}), spec));

    /* ---- header, history, attempts, artifacts, lineage, spec ---- */

    async function act(method, path, what) {
      if (method === "DELETE" && !confirm("Delete job " + (job ? job.name : id) + " and its files?")) return;
      const r = await call(method, path);
      if (!r.ok) { kiln.api.banner(what + " failed: " + kiln.api.errorText(r.body)); return; }
      if (method === "DELETE") { location.hash = "#/"; return; }
      reload();
    }

    function renderHead() {
      const j = job;
      title.textContent = j.name;
      const p = j.progress || {};
      const live = ACTIVE.includes(j.state) && j.state !== "CANCELLING";
      const facts = [["id", j.id], ["type", j.type], ["priority", j.priority], ["ranks", j.ranks],
                     ["pool", j.pool_id || ((j.attempts || []).length ? j.attempts[j.attempts.length - 1].pool_id + " (last)" : "–")],
                     ["attempt", j.attempt], ["params", num(j.params)],
                     ["MFLOPs", num(j.mflops)], ["submitted", time(j.created_at)],
                     ["ran for", j.started_at ? duration(j.started_at, j.finished_at) : "–"]];
      if ("owner" in j) facts.push(["owner", j.owner === null ? "–" : j.owner]);
      replace(head,
        h("div.head-state", {}, stateBadge(j.state), h("span.reason", {text: " " + (j.reason || "")}),
          h("span.muted", {text: j.message ? " — " + j.message : ""})),
        progressBar(p, "progress"),
        h("div.muted.small", {text: "step " + num(p.step) + " / " + num(p.total_steps)}),
        h("dl.facts", {}, facts.map(([k, v]) => [h("dt", {text: k}), h("dd", {text: v})])),
        j.result ? h("div.result", {}, h("strong", {text: "Result: "}),
          Object.entries(j.result).filter(([, v]) => typeof v !== "object").map(([k, v]) => h("span.pill", {text: k + " " + num(v)}))) : null,
        h("div.toolbar", {},
          live ? h("button", {type: "button", id: "cancel-job", text: "Cancel job",
                              onclick: () => act("POST", "/api/v1/jobs/" + encodeURIComponent(id) + "/cancel", "Cancel")}) : null,
          TERMINAL.includes(j.state) ? h("button.danger", {type: "button", id: "delete-job", text: "Delete job",
                              onclick: () => act("DELETE", "/api/v1/jobs/" + encodeURIComponent(id), "Delete")}) : null,
          h("a", {href: "#/compare?ids=" + encodeURIComponent(id), text: "Compare with…"})));
      replace(history, table(["time", "from", "to", "reason", "message"],
        (j.events || []).map(e => h("tr", {}, h("td.small", {text: time(e.time)}), h("td", {text: e.from || "–"}),
          h("td", {}, stateBadge(e.to)), h("td", {text: e.reason}), h("td", {text: e.message}))), "state changes, oldest first"));
      replace(attempts, (j.attempts || []).length === 0 ? h("p.muted", {text: "Not started yet."}) :
        table(["#", "pool", "hosts", "started", "ended", "exit reason", "message"],
          j.attempts.map(a => h("tr", {}, h("td", {text: a.attempt}), h("td", {text: a.pool_id}),
            h("td", {text: Array.isArray(a.hosts) ? a.hosts.join(", ") : (poolHosts[a.pool_id] || "–")}),
            h("td.small", {text: time(a.started_at)}), h("td.small", {text: a.active ? "running" : time(a.ended_at)}),
            h("td", {text: a.reason || (a.active ? "–" : "")}), h("td", {text: a.message || ""})))));
      replace(artifacts, (j.artifacts || []).length === 0 ? h("p.muted", {text: "None yet."}) :
        table(["name", "size", ""], j.artifacts.map(a => {
          const href = "/api/v1/jobs/" + encodeURIComponent(id) + "/artifacts/" + encodeURIComponent(a.name);
          return h("tr", {}, h("td.mono", {text: a.name}), h("td.num", {text: bytes(a.size)}),
            h("td", {}, h("a", {href, download: a.name, text: "download", "aria-label": "download " + a.name,
                                 onclick: ev => download(ev, href, a.name)})));
        })));
      renderLineage(j);
      replace(spec, jsonBlock(j.spec, "the spec with every default"));
    }

    /* With a token the link alone would not authenticate: fetch with it, then save. */
    async function download(ev, href, name) {
      if (!kiln.api.token()) return;
      ev.preventDefault();
      const r = await fetch(href, {headers: {Authorization: "Bearer " + kiln.api.token()}});
      if (!r.ok) { kiln.api.banner("Download failed: HTTP " + r.status); return; }
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", {download: name});
      a.href = url;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }

    /* init_from (a job's artifact or checkpoint, an uploaded model, a path)
     * and after (jobs with their states); each job is a link. */
    function renderLineage(j) {
      const s = j.spec || {};
      const items = [];
      const link = v => /^[A-Za-z0-9_-]+$/.test(String(v)) ? h("a", {href: "#/jobs/" + encodeURIComponent(v), text: v}) : h("span.mono", {text: v});
      const init = j.init_from || s.init_from;
      if (typeof init === "string") {
        items.push(h("li", {}, "starts from ", link(init)));
      } else if (init && init.job) {
        items.push(h("li", {}, "starts from job ", link(init.job), init.checkpoint ? " (its latest checkpoint)" : " (" + (init.artifact || "model.safetensors") + ")"));
      } else if (init && init.model) {
        items.push(h("li", {}, "starts from uploaded model ", h("span.mono", {text: init.model})));
      } else if (init && init.path) {
        items.push(h("li", {}, "starts from ", h("span.mono", {text: init.path}), " on the pool hosts"));
      }
      if (j.init_sha256) items.push(h("li", {}, "weights SHA-256 ", h("span.mono", {text: j.init_sha256.slice(0, 16) + "\u2026", title: j.init_sha256})));
      const after = Array.isArray(j.after) && j.after.length ? j.after : s.after;
      if (Array.isArray(after) && after.length) {
        items.push(h("li", {}, "runs after ", after.map((a, i) => [i ? ", " : "", link(a.id || a), a.state ? " (" + a.state + ")" : ""])));
      }
      const children = j.children || (j.lineage && j.lineage.children);
      if (Array.isArray(children) && children.length) items.push(h("li", {}, "used by ", children.map((c, i) => [i ? ", " : "", link(c.id || c)])));
      lineage.hidden = items.length === 0;
      replace(lineage, h("h3", {id: "lineage-h", text: "Lineage"}), h("ul", {}, items));
    }

    const poolHosts = {};
    async function loadPools() {
      const r = await call("GET", "/api/v1/workers");
      if (r.ok) for (const w of r.body.workers || []) poolHosts[w.id] = (w.hosts || []).join(", ");
    }

    /* ---- metrics ---- */

    function addPoint(p) {
      if (p.value === null || p.value === undefined) return;
      let s = series.get(p.name);
      if (!s) { s = {x: [], y: []}; series.set(p.name, s); }
      const n = s.x.length;
      if (n === 0 || p.step >= s.x[n - 1]) { s.x.push(p.step); s.y.push(p.value); return; }
      let i = n; /* out of order: insert in place */
      while (i > 0 && s.x[i - 1] > p.step) i--;
      s.x.splice(i, 0, p.step);
      s.y.splice(i, 0, p.value);
    }

    async function loadMetrics() {
      series.clear();
      let after = 0;
      for (let guard = 0; guard < 50; guard++) {
        const m = await get("/api/v1/jobs/" + encodeURIComponent(id) + "/metrics?max_points=" + MAX_POINTS + "&limit=100000&after_seq=" + after);
        for (const p of m.points || []) addPoint(p);
        if (m.next_seq <= after || !(m.points || []).length) break;
        after = m.next_seq;
      }
      seqHigh = after;
      return after;
    }

    function pick(group) {
      const out = [];
      for (const [name, s] of series) if (groupOf(name) === group) out.push({label: name, x: s.x, y: s.y});
      out.sort((a, b) => a.label.localeCompare(b.label));
      return out;
    }

    /* Steps at which an elastic event happened: where a running count grew. */
    function elasticSteps() {
      const s = series.get("search/elastic/events");
      if (!s) return [];
      const out = [];
      let last = 0;
      for (let i = 0; i < s.x.length; i++) { if (s.y[i] > last) out.push(s.x[i]); last = Math.max(last, s.y[i]); }
      return out;
    }

    function draw() {
      drawTimer = null;
      if (gone) return;
      for (const g of Object.keys(charts)) charts[g].set(pick(g));
      const others = pick("other").concat(pick("pmean"));
      replace(other, others.length ? h("details", {}, h("summary", {text: "Other metrics (" + others.length + ")"}),
        table(["name", "points", "latest"], others.map(s => h("tr", {}, h("td.mono", {text: s.label}),
          h("td.num", {text: s.x.length}), h("td.num", {text: num(s.y[s.y.length - 1])}))))) : null);
      if (job && (job.type === "prune" || job.type === "adapt")) {
        searchSection.hidden = false;
        const mf = pick("mflops");
        const tgt = pick("target");
        const xs = mf.flatMap(s => s.x);
        const lo = xs.length ? Math.min(...xs) : 0, hi = xs.length ? Math.max(...xs) : 1;
        /* the target and its band: one point each, drawn across the search */
        const flat = (name, dash) => {
          const t = tgt.find(s => s.label === name);
          return t ? {label: name, of: name, x: [lo, hi], y: [t.y[t.y.length - 1], t.y[t.y.length - 1]], dash, color: "#2e9e4f", width: 1} : null;
        };
        const lines = [flat("target/band_high_mflops", [4, 4]), flat("target/band_low_mflops", [4, 4]),
                       flat("target/mflops", null)].filter(Boolean);
        const all = mf.concat(lines);
        const hiIdx = all.findIndex(s => s.label === "target/band_high_mflops"), loIdx = all.findIndex(s => s.label === "target/band_low_mflops");
        search.mflops.set(all, {band: hiIdx >= 0 && loIdx >= 0 ? [hiIdx + 1, loIdx + 1] : null,
                                markers: elasticSteps(),
                                note: tgt.length ? "" : "the target band is drawn once the search has started"});
        search.subnets.set(pick("subnets"));
        const depth = pick("depth");
        search.depth.el.hidden = depth.length === 0 && job.type !== "adapt";
        search.depth.set(depth, {markers: elasticSteps()});
      }
    }

    function drawSoon() { if (!drawTimer) drawTimer = setTimeout(draw, 250); }

    async function loadWidths() {
      const names = (job.artifacts || []).map(a => a.name);
      const file = names.includes("report.json") ? "report.json" : names.includes("search.json") ? "search.json" : null;
      if (!file || (job.type !== "prune" && job.type !== "adapt")) return;
      const r = await call("GET", "/api/v1/jobs/" + encodeURIComponent(id) + "/artifacts/" + file);
      if (!r.ok || !r.body) return;
      /* units (the widths the search chose): prune {channels, kept}, adapt {existing, kept};
       * else layers with out_full (before) and out (after) */
      const b = r.body;
      let rows = [];
      if (Array.isArray(b.units) && b.units.length)
        rows = b.units.map(u => ({label: u.name, before: u.existing ?? u.channels, after: u.kept}));
      else if (Array.isArray(b.layers))
        rows = b.layers.filter(l => typeof l.out_full === "number").map(l => ({label: l.name, before: l.out_full, after: l.out}));
      if (!rows.length) return;
      const stages = Array.isArray(b.stages) ? b.stages : [];
      replace(widths, kiln.charts.barPairs("Per-layer widths, before and after (" + file + ")", rows, "ch"),
        stages.length ? table(["stage", "blocks before", "supernet", "kept", "expected"], stages.map((st, i) => h("tr", {},
          h("td", {text: i + 1}), h("td.num", {text: st.existing ?? "–"}), h("td.num", {text: st.supernet ?? "–"}),
          h("td.num", {text: st.kept ?? "–"}), h("td.num", {text: num(st.expected_depth)})))) : null,
        b.elastic && b.elastic.counts ? h("p.small", {text: "Elastic events: " +
          Object.entries(b.elastic.counts).map(([k, v]) => k + " " + v).join(", ")}) : null);
    }

    /* ---- logs ---- */

    function addLog(l) {
      const line = h("div.log-line" + (l.level === "error" ? ".err" : l.level === "warn" ? ".warn" : ""), {},
        h("span.log-time", {text: (l.time || "").replace("T", " ").replace("Z", "") + " "}),
        h("span.log-level", {text: (l.level || "") + " "}), h("span.log-text", {text: l.text}));
      logBox.appendChild(line);
      if (++logCount > MAX_LOG_LINES) { logBox.removeChild(logBox.firstChild); logCount--; }
      if (logFollow) logBox.scrollTop = logBox.scrollHeight;
    }

    /* ---- loading and following ---- */

    async function reload() {
      if (reloading || gone) return;
      reloading = true;
      try {
        const r = await call("GET", "/api/v1/jobs/" + encodeURIComponent(id));
        if (r.status === 404) { replace(main, h("h2", {tabindex: "-1", text: "No job " + id}), h("p", {}, h("a", {href: "#/", text: "Back to the jobs"}))); gone = true; return; }
        if (!r.ok) { kiln.api.banner("Job: " + kiln.api.errorText(r.body)); return; }
        job = r.body;
        renderHead();
        drawSoon();
        loadWidths();
      } finally { reloading = false; }
    }

    async function start() {
      await loadPools();
      await reload();
      if (gone || !job) return;
      const m = await loadMetrics();
      draw();
      const logs = await get("/api/v1/jobs/" + encodeURIComponent(id) + "/logs?tail=500");
      for (const l of logs.lines || []) addLog(l);
      const lastLog = (logs.lines || []).length ? logs.lines[logs.lines.length - 1].seq : 0;
      const lastEvent = Math.max(0, ...(job.events || []).map(e => e.seq));
      if (gone) return;
      stream = kiln.api.stream("/api/v1/jobs/" + encodeURIComponent(id) + "/events", {
        lastId: lastEvent + "." + m + "." + lastLog + ".-1",
        onState: s => kiln.app.live(s === "live" ? "live" : "reconnecting…"),
        onEvent(type, d) {
          if (type === "metric") {
            if (d.seq <= seqHigh) return;
            seqHigh = d.seq;
            addPoint(d);
            const s = series.get(d.name);
            if (s && s.x.length > 4 * MAX_POINTS) { loadMetrics().then(drawSoon); return; }
            drawSoon();
          } else if (type === "log") {
            addLog(d);
          } else if (type === "state" && d.from === "RESTARTING") {
            /* a retry: the server dropped the points earlier attempts logged after
               the step it resumes from; take the series again */
            loadMetrics().then(drawSoon);
            clearTimeout(reloadTimer);
            reloadTimer = setTimeout(reload, 200);
          } else if (type === "state" || type === "checkpoint") {
            clearTimeout(reloadTimer);
            reloadTimer = setTimeout(reload, 200);
          }
        },
        onEnd() { kiln.app.live("finished"); reload(); },
      });
    }

    start().catch(e => kiln.api.banner("Job page: " + e.message));
    const progressTimer = setInterval(() => { if (job && ACTIVE.includes(job.state)) reload(); }, 5000);
    return () => {
      gone = true;
      clearInterval(progressTimer);
      clearTimeout(reloadTimer);
      clearTimeout(drawTimer);
      if (stream) stream.close();
      for (const c of Object.values(charts).concat(Object.values(search))) c.destroy();
    };
  }

  kiln.views = kiln.views || {};
  kiln.views.job = view;
  kiln.views.groupOf = groupOf;
})(window.kiln);
