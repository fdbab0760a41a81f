/* submit.js - the submit view (window.kiln.views.submit).
 *
 * A preset (model family x job type) fills an editable JSON spec; a few
 * form fields (name, priority, epochs, batch size, lr, ranks, target
 * ratio) edit the same JSON and follow it when it is edited by hand.
 * "Preview" posts with dry_run=true and shows params, MFLOPs and the spec
 * with defaults; "Submit" posts it and opens the job. The server's 400
 * details are shown beside the field they name (or under the editor when
 * no field shows that path). The browser's one thread.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h, replace, num, field, jsonBlock} = kiln.dom;
  const {call} = kiln.api;

  const MODELS = {
    resnet: {label: "ResNet-20", model: {arch: "resnet_cifar", depth: 20, widths: [16, 32, 64]},
             optim: {epochs: 30, batch_size: 128}},
    mobilenetv2: {label: "MobileNetV2 (width 0.5)", model: {arch: "mobilenetv2", width_mult: 0.5},
                  optim: {epochs: 60, batch_size: 128, lr: 0.1, weight_decay: 4e-5}},
    deit: {label: "DeiT (tiny)", model: {arch: "deit", embed_dim: 96, depth: 6, num_heads: 3, mlp_ratio: 4, patch_size: 4},
           optim: {optimizer: "adamw", lr: 1e-3, weight_decay: 0.05, batch_size: 128, epochs: 30}},
    ceit: {label: "CeiT (tiny)", model: {arch: "ceit", embed_dim: 96, depth: 6, num_heads: 3, patch_size: 2,
                                          stem: {type: "i2t", channels: 32}},
           optim: {epochs: 30, batch_size: 128}},
  };
  const TYPES = {
    train: () => ({}),
    prune: () => ({prune: {method: "dmcp", target_ratio: 0.5, warmup_epochs: 10, search_epochs: 10}}),
    adapt: () => ({adapt: {method: "dna", target_ratio: 1.3, warmup_epochs: 10, search_epochs: 10}}),
  };

  function preset(model, type) {
    const m = MODELS[model];
    return Object.assign({name: model + "-" + type, type, priority: 50,
                          model: structuredClone(m.model),
                          data: {dataset: "fashion-mnist"},
                          optim: structuredClone(m.optim)}, TYPES[type]());
  }

  function getPath(o, path) {
    return path.split(".").reduce((v, k) => (v && typeof v === "object" ? v[k] : undefined), o);
  }
  function setPath(o, path, v) {
    const ks = path.split(".");
    let cur = o;
    for (const k of ks.slice(0, -1)) {
      if (!cur[k] || typeof cur[k] !== "object") cur[k] = {};
      cur = cur[k];
    }
    if (v === undefined) delete cur[ks[ks.length - 1]];
    else cur[ks[ks.length - 1]] = v;
  }

  function view(main, params) {
    const modelSel = h("select", {id: "preset-model"}, Object.entries(MODELS).map(([k, m]) =>
      h("option", {value: k, text: m.label, selected: params.model === k})));
    const typeSel = h("select", {id: "preset-type"}, Object.keys(TYPES).map(t =>
      h("option", {value: t, text: t, selected: params.type === t})));
    const editor = h("textarea", {id: "spec-json", rows: "22", spellcheck: "false", "aria-describedby": "spec-json-err"});
    const editorErr = h("div.field-error", {id: "spec-json-err", role: "alert"});
    const result = h("div", {id: "submit-result", "aria-live": "polite"});

    /* form fields: [label, JSON path, type, hint] */
    const FIELDS = [
      ["Name", "name", "text"], ["Priority", "priority", "number", "0-100, higher runs first"],
      ["Epochs", "optim.epochs", "number"], ["Batch size", "optim.batch_size", "number"],
      ["Learning rate", "optim.lr", "number", "empty: the family's default"],
      ["Ranks", "resources.ranks", "number", "MPI ranks of the pool"],
      ["Target ratio", "*.target_ratio", "number", "prune/adapt: target MFLOPs / the model's"],
    ];
    const inputs = {};
    const fieldEls = FIELDS.map(([label, path, type, hint]) => {
      const inp = h("input", {type, id: "f-" + path.replace(/[^a-z]/gi, "-"), "data-path": path, step: type === "number" ? "any" : null});
      inputs[path] = inp;
      inp.addEventListener("input", () => fromFields(path));
      const f = field(label, inp, hint);
      f.dataset.path = path;
      return f;
    });

    function spec() { return JSON.parse(editor.value); }
    function realPath(path, s) {
      if (!path.startsWith("*.")) return path;
      const t = s && s.type === "adapt" ? "adapt" : "prune";
      return t + path.slice(1);
    }

    function toFields() {
      let s;
      try { s = spec(); } catch (_) { return; }
      for (const [, path] of FIELDS) {
        const v = getPath(s, realPath(path, s));
        inputs[path].value = v === undefined || v === null ? "" : String(v);
        const f = inputs[path].closest(".field");
        if (f) f.hidden = path.startsWith("*.") && !(s.type === "prune" || s.type === "adapt");
      }
    }

    function fromFields(path) {
      let s;
      try { s = spec(); } catch (e) { editorErr.textContent = "The JSON does not parse: " + e.message; return; }
      const inp = inputs[path];
      const raw = inp.value.trim();
      const v = raw === "" ? undefined : inp.type === "number" ? Number(raw) : raw;
      setPath(s, realPath(path, s), v);
      editor.value = JSON.stringify(s, null, 2);
    }

    function load() {
      editor.value = JSON.stringify(preset(modelSel.value, typeSel.value), null, 2);
      toFields();
      clearErrors();
    }

    function clearErrors() {
      for (const el of main.querySelectorAll(".field-error")) el.textContent = "";
      for (const el of main.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
      editorErr.textContent = "";
    }

    /* The server's details, each beside its field when a field shows that path. */
    function showErrors(body) {
      clearErrors();
      const e = body && body.error;
      if (!e) { editorErr.textContent = "The server refused the spec (no details)."; return; }
      let s = null;
      try { s = spec(); } catch (_) { s = null; }
      const rest = [];
      let first = null;
      for (const d of e.details || []) {
        const key = Object.keys(inputs).find(p => realPath(p, s) === d.field);
        if (key) {
          const inp = inputs[key];
          const err = document.getElementById(inp.id + "-err");
          err.textContent = (err.textContent ? err.textContent + "; " : "") + d.reason;
          inp.setAttribute("aria-invalid", "true");
          if (!first) first = inp;
        } else {
          rest.push((d.field || "(the spec)") + ": " + d.reason);
        }
      }
      editorErr.textContent = rest.length ? rest.join("\n") : (e.details || []).length ? "" : e.message;
      if (rest.length) editor.setAttribute("aria-invalid", "true");
      (first || editor).focus();
    }

    async function send(dry) {
      let s;
      try { s = spec(); } catch (e) { editorErr.textContent = "The JSON does not parse: " + e.message; editor.focus(); return; }
      replace(result, h("p.muted", {text: dry ? "checking…" : "submitting…"}));
      const r = await call("POST", "/api/v1/jobs" + (dry ? "?dry_run=true" : ""), s);
      if (r.status === 400 || r.status === 501) { replace(result); showErrors(r.body); return; }
      if (!r.ok) { replace(result, h("p.error", {text: "HTTP " + r.status + ": " + kiln.api.errorText(r.body)})); return; }
      clearErrors();
      if (dry) {
        replace(result, h("div.preview", {id: "dry-run"},
          h("h3", {text: "Preview (dry run): valid, nothing stored"}),
          h("dl.facts", {}, h("dt", {text: "params"}), h("dd", {id: "dry-params", text: num(r.body.params)}),
            h("dt", {text: "MFLOPs"}), h("dd", {id: "dry-mflops", text: num(r.body.mflops)})),
          h("details", {open: true}, h("summary", {text: "the spec with its defaults"}), jsonBlock(r.body.spec))));
      } else {
        location.hash = "#/jobs/" + encodeURIComponent(r.body.id);
      }
    }

    modelSel.addEventListener("change", load);
    typeSel.addEventListener("change", load);
    editor.addEventListener("input", () => { toFields(); });

    replace(main,
      h("h2", {tabindex: "-1", text: "Submit a job"}),
      h("form.submit", {id: "submit-form", "aria-label": "job spec", onsubmit: ev => { ev.preventDefault(); send(false); }},
        h("fieldset", {}, h("legend", {text: "Preset"}), field("Model", modelSel), field("Job type", typeSel)),
        h("fieldset.fields", {}, h("legend", {text: "Common fields"}), fieldEls),
        h("div.field.editor", {}, h("label", {for: "spec-json", text: "Job spec (JSON; the fields above edit it)"}), editor, editorErr),
        h("div.toolbar", {},
          h("button", {type: "button", id: "dry-run-btn", text: "Preview (dry run)", onclick: () => send(true)}),
          h("button.primary", {type: "submit", id: "submit-btn", text: "Submit"}),
          h("a", {href: "/api/v1/schemas/jobspec.schema.json", text: "the spec's schema"}))),
      result);
    load();
    return () => {};
  }

  kiln.views = kiln.views || {};
  kiln.views.submit = view;
})(window.kiln);
