/* jobs.js - the job list view (window.kiln.views.jobs).
 *
 * Filters (state, type, name or id, owner when jobs have one), sorting by
 * submit time or priority, paging with the server's page tokens, and
 * live updates: every state event on /api/v1/events refreshes the page
 * (at most every 300 ms); progress and metrics, which have no event of
 * their own, are read again every 5 s while a listed job is active. Rows
 * can be selected for the compare view. The browser's one thread; state
 * lives in the view and is dropped when it is left.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h, replace, num, time, ago, stateBadge, progressBar, field, ACTIVE} = kiln.dom;
  const {call} = kiln.api;
  const STATES = ["QUEUED", "STARTING", "RUNNING", "RESTARTING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"];

  function selected() {
    try { return JSON.parse(sessionStorage.getItem("kiln_compare") || "[]"); } catch (_) { return []; }
  }
  function setSelected(ids) { sessionStorage.setItem("kiln_compare", JSON.stringify(ids)); }

  function latestText(m) {
    if (!m || typeof m !== "object") return "";
    const keys = Object.keys(m);
    const pref = keys.filter(k => /top1|acc/.test(k)).concat(keys.filter(k => /loss/.test(k) && !/flops/.test(k)));
    const pick = Array.from(new Set(pref.concat(keys))).slice(0, 3);
    return pick.map(k => k + " " + num(m[k] && m[k].value)).join(" · ");
  }

  async function cancel(id, after) {
    const r = await call("POST", "/api/v1/jobs/" + encodeURIComponent(id) + "/cancel");
    if (!r.ok) kiln.api.banner("Cancel failed: " + kiln.api.errorText(r.body));
    after();
  }

  function view(main, params) {
    const q = Object.assign({state: "", type: "", q: "", owner: "", order_by: "created_at", page_size: "25"}, params);
    let tokens = [""]; /* page tokens of the pages seen: tokens[i] opens page i */
    let page = 0, timer = null, pending = null, stream = null, gone = false;

    const stateSel = h("select", {id: "f-state", name: "state"}, h("option", {value: "", text: "any"}),
                       STATES.map(s => h("option", {value: s, text: s, selected: q.state === s})));
    const typeSel = h("select", {id: "f-type", name: "type"}, ["", "train", "prune", "adapt"].map(t =>
                      h("option", {value: t, text: t || "any", selected: q.type === t})));
    const text = h("input", {id: "f-q", type: "search", value: q.q, placeholder: "name or id"});
    const owner = h("input", {id: "f-owner", type: "search", value: q.owner, placeholder: "owner"});
    const ownerField = field("Owner", owner);
    ownerField.hidden = !q.owner;
    const order = h("select", {id: "f-order"},
                    h("option", {value: "created_at", text: "submitted (newest first)", selected: q.order_by === "created_at"}),
                    h("option", {value: "priority", text: "priority (highest first)", selected: q.order_by === "priority"}));
    const size = h("select", {id: "f-size"}, ["10", "25", "50", "100"].map(n => h("option", {value: n, text: n, selected: q.page_size === n})));
    const form = h("form.filters", {role: "search", "aria-label": "filter jobs"},
                   field("State", stateSel), field("Type", typeSel), field("Name or id", text), ownerField,
                   field("Sort by", order), field("Per page", size),
                   h("button", {type: "submit", text: "Apply"}));
    const tbody = h("tbody", {id: "job-rows"});
    const prev = h("button", {type: "button", text: "← Newer", disabled: true});
    const next = h("button", {type: "button", text: "Older →", disabled: true});
    const pageInfo = h("span.muted", {"aria-live": "polite"});
    const compareBtn = h("button", {type: "button", id: "compare-selected", text: "Compare selected"});
    const count = h("span.muted", {id: "compare-count"});
    const ownerHead = h("th", {scope: "col", text: "owner", hidden: true});

    function updateCompare() {
      const n = selected().length;
      count.textContent = n ? n + " selected" : "select jobs to compare their curves";
      compareBtn.disabled = n < 2;
    }
    compareBtn.addEventListener("click", () => { location.hash = "#/compare?ids=" + encodeURIComponent(selected().join(",")); });

    let showOwner = false; /* whether the owner column is drawn (set by refresh) */
    function query() {
      const p = new URLSearchParams();
      if (q.state) p.set("state", q.state);
      if (q.type) p.set("type", q.type);
      if (q.q) p.set("q", q.q);
      if (q.owner) p.set("owner", q.owner);
      if (q.order_by !== "created_at") p.set("order_by", q.order_by);
      p.set("page_size", q.page_size);
      if (tokens[page]) p.set("page_token", tokens[page]);
      return p.toString();
    }

    function row(j) {
      const sel = selected();
      const box = h("input", {type: "checkbox", checked: sel.includes(j.id), "aria-label": "select " + j.name + " to compare"});
      box.addEventListener("change", () => {
        const s = selected().filter(x => x !== j.id);
        if (box.checked) s.push(j.id);
        setSelected(s);
        updateCompare();
      });
      const live = ACTIVE.includes(j.state) && j.state !== "CANCELLING";
      return h("tr", {"data-id": j.id, "data-state": j.state},
        h("td", {}, box),
        h("td", {}, h("a", {href: "#/jobs/" + encodeURIComponent(j.id), text: j.name, class: "job-link"}),
          h("div.muted.mono", {text: j.id})),
        h("td", {text: j.type}),
        h("td.num", {text: j.priority}),
        h("td", {}, stateBadge(j.state), h("div.muted.small", {text: (j.reason || "") + (j.message ? ": " + j.message : "")})),
        h("td", {}, progressBar(j.progress, "progress of " + j.name),
          h("div.muted.small", {text: "step " + num((j.progress || {}).step) + " / " + num((j.progress || {}).total_steps)})),
        h("td.small", {text: latestText(j.latest_metrics)}),
        showOwner ? h("td", {text: j.owner || ""}) : null,
        h("td.small", {title: time(j.created_at)}, ago(j.created_at)),
        h("td", {}, live ? h("button.small", {type: "button", text: "Cancel", "aria-label": "cancel " + j.name,
                                               onclick: () => cancel(j.id, refresh)}) : null));
    }

    async function refresh() {
      if (gone) return;
      let r;
      try {
        r = await call("GET", "/api/v1/jobs?" + query());
      } catch (e) {
        kiln.api.banner("Cannot reach the server: " + e.message);
        return;
      }
      if (gone) return;
      if (!r.ok) { kiln.api.banner("Jobs: " + kiln.api.errorText(r.body)); return; }
      kiln.api.banner("");
      let jobs = r.body.jobs || [];
      // a server with tokens names each job's owner; without tokens every owner is ""
      showOwner = jobs.some(j => j.owner);
      ownerHead.hidden = !showOwner;
      if (showOwner) ownerField.hidden = false;
      replace(tbody, jobs.length ? jobs.map(row) :
        h("tr", {}, h("td", {colspan: "10", class: "muted"}, "No jobs here. ", h("a", {href: "#/submit", text: "Submit one"}), ".")));
      tokens.length = page + 1;
      if (r.body.next_page_token) tokens.push(r.body.next_page_token);
      next.disabled = !r.body.next_page_token;
      prev.disabled = page === 0;
      pageInfo.textContent = "page " + (page + 1);
      clearTimeout(timer);
      if (jobs.some(j => ACTIVE.includes(j.state))) timer = setTimeout(refresh, 5000);
    }

    function soon() {
      if (pending) return;
      pending = setTimeout(() => { pending = null; refresh(); }, 300);
    }

    form.addEventListener("submit", ev => {
      ev.preventDefault();
      Object.assign(q, {state: stateSel.value, type: typeSel.value, q: text.value.trim(), owner: owner.value.trim(),
                        order_by: order.value, page_size: size.value});
      page = 0;
      tokens = [""];
      const p = new URLSearchParams();
      for (const k of ["state", "type", "q", "owner"]) if (q[k]) p.set(k, q[k]);
      if (q.order_by !== "created_at") p.set("order_by", q.order_by);
      if (q.page_size !== "25") p.set("page_size", q.page_size);
      history.replaceState(null, "", "#/" + (p.toString() ? "?" + p.toString() : ""));
      refresh();
    });
    prev.addEventListener("click", () => { if (page > 0) { page--; refresh(); } });
    next.addEventListener("click", () => { if (tokens[page + 1]) { page++; refresh(); } });

    replace(main,
      h("h2", {tabindex: "-1", text: "Jobs"}),
      form,
      h("div.toolbar", {}, compareBtn, count),
      h("table.jobs", {}, h("caption.sr-only", {text: "Jobs"}),
        h("thead", {}, h("tr", {}, h("th", {scope: "col"}, h("span.sr-only", {text: "select"})),
          ["job", "type", "prio", "state", "progress", "latest metrics"].map(t => h("th", {scope: "col", text: t})),
          ownerHead, h("th", {scope: "col", text: "submitted"}), h("th", {scope: "col"}, h("span.sr-only", {text: "actions"})))),
        tbody),
      h("div.pager", {}, prev, pageInfo, next));
    updateCompare();
    refresh();
    stream = kiln.api.stream("/api/v1/events", {
      onEvent: () => soon(),
      onState: s => kiln.app.live(s === "live" ? "live" : "reconnecting…"),
    });
    return () => { gone = true; clearTimeout(timer); clearTimeout(pending); if (stream) stream.close(); };
  }

  kiln.views = kiln.views || {};
  kiln.views.jobs = view;
})(window.kiln);
