// validate.mjs [DIR] - `make test-deploy`: the Kubernetes manifests of deploy/k8s, offline.
//
// For each kustomization (DIR and DIR/*/): the kustomization's own fields, every resource
// file it lists (and no manifest left out), the Secrets its secretGenerator makes (from
// placeholder bytes: the real files are the user's, never committed), then every object:
//   - against the Kubernetes 1.27 schemas that the npm package kubernetes-models ships
//     (types, required fields, enums, formats), and strictly: a field the API does not
//     define is an error, as kubectl's strict field validation makes it (the field lists
//     are read from kubernetes-models' type declarations);
//   - the MPIJob against mpijob-v2beta1.schema.json (the MPI Operator's CRD and admission
//     rules), its pod templates against the Kubernetes PodTemplateSpec;
//   - the wiring: every Secret, key, claim and ConfigMap a pod names exists; a Service's
//     selector matches a pod template; a StatefulSet's serviceName is a headless Service;
//     probes name ports their container has.
// Then each file of bad/ (one defect each, its expected error in a "# expect:" line) must
// be rejected with that error, so that the checks above are known to fail when they should.
// Prints one line per object and a closing "N passed, N failed" line; exits 1 on a failure.
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { join, dirname, basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import YAML from "yaml";
import Ajv from "ajv";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// ---- the Kubernetes models --------------------------------------------------------------
import * as coreV1 from "kubernetes-models/v1";
import * as appsV1 from "kubernetes-models/apps/v1";
import * as batchV1 from "kubernetes-models/batch/v1";
import * as policyV1 from "kubernetes-models/policy/v1";
import * as networkingV1 from "kubernetes-models/networking.k8s.io/v1";

const MODELS = {
  v1: coreV1,
  "apps/v1": appsV1,
  "batch/v1": batchV1,
  "policy/v1": policyV1,
  "networking.k8s.io/v1": networkingV1,
};
const CLUSTER_SCOPED = new Set(["Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
  "ClusterRoleBinding", "CustomResourceDefinition"]);

// The fields of every Kubernetes type, from the .d.ts files of kubernetes-models and
// @kubernetes-models/apimachinery: interface name -> {field: type text}.
function loadFieldMaps() {
  const roots = [dirname(require.resolve("kubernetes-models/package.json")),
    dirname(require.resolve("@kubernetes-models/apimachinery/package.json"))];
  const types = new Map();
  const walk = (dir) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) {
        if (e !== "node_modules") walk(p);
      } else if (e.endsWith(".d.ts")) {
        parseDts(readFileSync(p, "utf8"), types);
      }
    }
  };
  roots.forEach(walk);
  return types;
}

function parseDts(text, types) {
  const local = new Map();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^export interface (\w+)(?: extends \w+)? \{$/.exec(lines[i]);
    if (!m) continue;
    const fields = {};
    for (i++; i < lines.length && lines[i] !== "}"; i++) {
      const f = /^ {4}"([^"]+)"\??: (.*)$/.exec(lines[i]);
      if (!f) continue;
      let type = f[2];
      if (type === "{") { // a map: { [key: string]: T; }
        const v = /\]: (.*);$/.exec(lines[i + 1] || "");
        type = `map<${v ? v[1] : "string"}>`;
        while (i < lines.length && !/^ {4}\};$/.test(lines[i])) i++;
      }
      fields[f[1]] = type.replace(/;$/, "");
    }
    local.set(m[1], fields);
  }
  for (const m of text.matchAll(/^export \{ (.*) \};$/gm)) {
    for (const part of m[1].split(",")) {
      const a = /(\w+) as (\w+)/.exec(part.trim());
      if (a && local.has(a[1])) types.set(a[2], local.get(a[1]));
    }
  }
}

const FIELD_TYPES = loadFieldMaps();

// Every field of obj that type `name` does not define (recursively), as "path: field".
function unknownFields(obj, name, path, out) {
  const fields = FIELD_TYPES.get(name);
  if (!fields || obj === null || typeof obj !== "object" || Array.isArray(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (!(k in fields)) {
      out.push(`${path}/${k}: no such field in ${name.replace(/^IIoK8s(Api|ApimachineryPkgApis)?/, "")}`);
      continue;
    }
    const t = fields[k];
    let m;
    if ((m = /^(IIoK8s\w+)$/.exec(t))) unknownFields(v, m[1], `${path}/${k}`, out);
    else if ((m = /^Array<(IIoK8s\w+)>$/.exec(t)) && Array.isArray(v))
      v.forEach((x, i) => unknownFields(x, m[1], `${path}/${k}/${i}`, out));
    else if ((m = /^map<(IIoK8s\w+)>$/.exec(t)) && v && typeof v === "object")
      Object.entries(v).forEach(([kk, x]) => unknownFields(x, m[1], `${path}/${k}/${kk}`, out));
  }
  return out;
}

// The name of the .d.ts type of a kind, e.g. apps/v1 StatefulSet -> IIoK8sApiAppsV1StatefulSet.
function typeName(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const g = group.replace(/\.k8s\.io$/, "").split(".").map((s) => s[0].toUpperCase() + s.slice(1)).join("");
  return `IIoK8sApi${g}${version[0].toUpperCase()}${version.slice(1)}${kind}`;
}

function checkKubernetes(obj) {
  const errs = [];
  const mod = MODELS[obj.apiVersion];
  const Model = mod && mod[obj.kind];
  if (!Model) return [`${obj.apiVersion} ${obj.kind}: not a Kubernetes kind this check knows`];
  try {
    new Model(obj).validate();
  } catch (e) {
    errs.push(String(e.message || e));
  }
  const t = typeName(obj.apiVersion, obj.kind);
  if (!FIELD_TYPES.has(t)) errs.push(`no field list for ${t}`);
  return errs.concat(unknownFields(obj, t, "", []));
}

// ---- the MPIJob -------------------------------------------------------------------------
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const mpiJobSchema = JSON.parse(readFileSync(join(here, "mpijob-v2beta1.schema.json"), "utf8"));
const validateMPIJob = ajv.compile(mpiJobSchema);

function checkMPIJob(obj) {
  const errs = [];
  if (!validateMPIJob(obj))
    for (const e of validateMPIJob.errors)
      errs.push(`${e.instancePath || "/"} ${e.message}${e.params && e.params.additionalProperty ? `: ${e.params.additionalProperty}` : ""}`);
  for (const [role, rs] of Object.entries((obj.spec && obj.spec.mpiReplicaSpecs) || {})) {
    if (!rs || !rs.template) continue;
    const tmpl = { apiVersion: "v1", kind: "PodTemplate", metadata: { name: `${role}` }, template: rs.template };
    for (const e of checkKubernetes(tmpl)) errs.push(`mpiReplicaSpecs/${role}: ${e}`);
  }
  // The agent and the launcher rely on these (deploy/kiln-pool).
  const mount = obj.spec && obj.spec.sshAuthMountPath;
  const launcher = podSpecs(obj).find((p) => p.role === "Launcher");
  if (launcher) {
    const env = Object.fromEntries((launcher.spec.containers[0].env || []).map((e) => [e.name, e.value]));
    if (env.KILN_SSH_DIR !== mount) errs.push(`Launcher: KILN_SSH_DIR ${env.KILN_SSH_DIR} is not sshAuthMountPath ${mount}`);
  }
  return errs;
}

// ---- objects, files, kustomizations -----------------------------------------------------
function podSpecs(obj) {
  const s = obj.spec || {};
  if (obj.kind === "MPIJob")
    return Object.entries(s.mpiReplicaSpecs || {}).map(([role, r]) => ({ role, spec: r.template.spec, labels: (r.template.metadata || {}).labels || {} }));
  if (s.template && s.template.spec)
    return [{ role: obj.kind, spec: s.template.spec, labels: (s.template.metadata || {}).labels || {} }];
  if (obj.kind === "Pod") return [{ role: "Pod", spec: s, labels: (obj.metadata || {}).labels || {} }];
  return [];
}

function checkObject(obj) {
  if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) return ["not a Kubernetes object (apiVersion and kind)"];
  if (obj.apiVersion === "kubeflow.org/v2beta1") return checkMPIJob(obj);
  const errs = checkKubernetes(obj);
  // probes that name ports must name ports of their container
  for (const p of podSpecs(obj))
    for (const c of p.spec.containers || []) {
      const names = new Set((c.ports || []).map((x) => x.name));
      for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const pr = c[probe];
        const port = pr && ((pr.httpGet && pr.httpGet.port) || (pr.tcpSocket && pr.tcpSocket.port));
        if (typeof port === "string" && !names.has(port)) errs.push(`${c.name}: ${probe} names port ${port}, which it has not`);
      }
    }
  return errs;
}

// The cross-object wiring of one kustomization's objects (plus `also`, objects of the
// kustomization it runs beside).
function checkWiring(objs, also = []) {
  const errs = [];
  const all = objs.concat(also);
  const find = (kind, name) => all.find((o) => o.kind === kind && o.metadata && o.metadata.name === name);
  for (const o of objs) {
    const where = `${o.kind}/${o.metadata && o.metadata.name}`;
    for (const p of podSpecs(o)) {
      const secretKey = (name, key, what) => {
        const s = find("Secret", name);
        if (!s) errs.push(`${where}: ${what} names Secret ${name}, which no manifest makes`);
        else if (key !== undefined && !(key in (s.data || {})) && !(key in (s.stringData || {})))
          errs.push(`${where}: ${what} names key ${key} of Secret ${name}, which it has not`);
      };
      for (const v of p.spec.volumes || []) {
        if (v.secret && v.secret.secretName !== undefined) {
          secretKey(v.secret.secretName, undefined, `volume ${v.name}`);
          for (const it of v.secret.items || []) secretKey(v.secret.secretName, it.key, `volume ${v.name}`);
        }
        if (v.persistentVolumeClaim && !find("PersistentVolumeClaim", v.persistentVolumeClaim.claimName))
          errs.push(`${where}: volume ${v.name} names claim ${v.persistentVolumeClaim.claimName}, which no manifest makes`);
      }
      for (const c of p.spec.containers || []) {
        const vols = new Set((p.spec.volumes || []).map((v) => v.name));
        const claims = new Set(((o.spec && o.spec.volumeClaimTemplates) || []).map((v) => v.metadata.name));
        for (const m of c.volumeMounts || [])
          if (!vols.has(m.name) && !claims.has(m.name)) errs.push(`${where}: ${c.name} mounts ${m.name}, which is no volume`);
        for (const e of c.env || []) {
          const r = e.valueFrom && e.valueFrom.secretKeyRef;
          if (r) secretKey(r.name, r.key, `env ${e.name}`);
        }
      }
    }
    if (o.kind === "Service" && o.spec.selector) {
      const sel = Object.entries(o.spec.selector);
      const pods = all.flatMap(podSpecs);
      if (!pods.some((p) => sel.every(([k, v]) => p.labels[k] === v)))
        errs.push(`${where}: its selector matches no pod template`);
    }
    if (o.kind === "StatefulSet") {
      const svc = find("Service", o.spec.serviceName);
      if (!svc || svc.spec.clusterIP !== "None")
        errs.push(`${where}: serviceName ${o.spec.serviceName} is not a headless Service here`);
      const tl = (o.spec.template.metadata || {}).labels || {};
      for (const [k, v] of Object.entries(o.spec.selector.matchLabels || {}))
        if (tl[k] !== v) errs.push(`${where}: selector ${k}=${v} does not match its pod template`);
    }
  }
  return errs;
}

const kustomizationSchema = ajv.compile({
  type: "object",
  required: ["apiVersion", "kind", "resources"],
  additionalProperties: false,
  properties: {
    apiVersion: { const: "kustomize.config.k8s.io/v1beta1" },
    kind: { const: "Kustomization" },
    namespace: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
    resources: { type: "array", minItems: 1, items: { type: "string" } },
    labels: {
      type: "array",
      items: {
        type: "object", additionalProperties: false, required: ["pairs"],
        properties: { pairs: { type: "object", additionalProperties: { type: "string" } },
          includeSelectors: { type: "boolean" }, includeTemplates: { type: "boolean" } },
      },
    },
    secretGenerator: {
      type: "array",
      items: {
        type: "object", additionalProperties: false, required: ["name"],
        properties: { name: { type: "string" }, type: { type: "string" },
          files: { type: "array", items: { type: "string" } },
          envs: { type: "array", items: { type: "string" } },
          literals: { type: "array", items: { type: "string" } } },
      },
    },
    generatorOptions: {
      type: "object", additionalProperties: false,
      properties: { disableNameSuffixHash: { type: "boolean" }, labels: { type: "object" } },
    },
    images: {
      type: "array",
      items: {
        type: "object", additionalProperties: false, required: ["name"],
        properties: { name: { type: "string" }, newName: { type: "string" }, newTag: { type: "string" }, digest: { type: "string" } },
      },
    },
  },
});

// A Secret as kustomize's secretGenerator makes it: keys from files (KEY=path) and from
// env files (their KEY=VALUE lines). The real files are the user's (deploy/init-secrets.sh);
// when absent, placeholder bytes stand in, and the keys come from init-secrets.sh's formats.
function generateSecret(dir, g) {
  const data = {};
  for (const f of g.files || []) {
    const [key, path] = f.includes("=") ? f.split("=") : [basename(f), f];
    if (!path.startsWith("secrets/")) throw new Error(`secretGenerator ${g.name}: ${path} is outside secrets/ (which .gitignore keeps out of git)`);
    data[key] = Buffer.from(existsSync(join(dir, path)) ? readFileSync(join(dir, path)) : "placeholder").toString("base64");
  }
  for (const e of g.envs || []) {
    if (!e.startsWith("secrets/")) throw new Error(`secretGenerator ${g.name}: ${e} is outside secrets/`);
    const text = existsSync(join(dir, e)) ? readFileSync(join(dir, e), "utf8") : "KILN_POOL_TOKEN=placeholder\n";
    for (const line of text.split("\n")) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
      if (m) data[m[1]] = Buffer.from(m[2]).toString("base64");
    }
  }
  return { apiVersion: "v1", kind: "Secret", metadata: { name: g.name }, type: g.type || "Opaque", data };
}

// Loads one kustomization: [objects with their file], errors.
function loadKustomization(dir) {
  const errs = [];
  const k = YAML.parse(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  if (!kustomizationSchema(k))
    for (const e of kustomizationSchema.errors) errs.push(`kustomization.yaml${e.instancePath} ${e.message}`);
  const listed = new Set(k.resources || []);
  for (const f of readdirSync(dir))
    if (/\.ya?ml$/.test(f) && f !== "kustomization.yaml" && !listed.has(f))
      errs.push(`${f} is not in kustomization.yaml's resources`);
  const objs = [];
  for (const r of k.resources || []) {
    if (!existsSync(join(dir, r))) { errs.push(`kustomization.yaml lists ${r}, which does not exist`); continue; }
    for (const doc of YAML.parseAllDocuments(readFileSync(join(dir, r), "utf8"))) {
      if (doc.errors.length) { errs.push(`${r}: ${doc.errors[0].message}`); continue; }
      const o = doc.toJS();
      if (o) objs.push({ file: r, obj: o });
    }
  }
  for (const g of k.secretGenerator || []) {
    try { objs.push({ file: "secretGenerator", obj: generateSecret(dir, g) }); } catch (e) { errs.push(e.message); }
  }
  // kustomize's transformers: namespace, labels, images (as `kubectl apply -k` applies them)
  for (const { obj } of objs) {
    obj.metadata = obj.metadata || {};
    if (k.namespace && !CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
    for (const l of k.labels || []) obj.metadata.labels = { ...(obj.metadata.labels || {}), ...l.pairs };
    for (const p of podSpecs(obj))
      for (const c of p.spec.containers || [])
        for (const im of k.images || [])
          if (c.image === im.name || (c.image || "").startsWith(`${im.name}:`))
            c.image = `${im.newName || im.name}${im.digest ? `@${im.digest}` : `:${im.newTag || "latest"}`}`;
  }
  return { objs, errs, namespace: k.namespace };
}

// ---- main ---------------------------------------------------------------------------------
let passed = 0, failed = 0;
const report = (ok, what, errs) => {
  if (ok) { passed++; console.log(`ok: ${what}`); }
  else { failed++; console.log(`FAIL: ${what}`); for (const e of errs.slice(0, 8)) console.log(`    ${e}`); }
};

const top = resolve(process.argv[2] || join(here, "../../deploy/k8s"));
const dirs = [top].concat(readdirSync(top).map((d) => join(top, d)).filter((d) => statSync(d).isDirectory() && existsSync(join(d, "kustomization.yaml"))));
const loaded = dirs.map((d) => ({ dir: d, ...loadKustomization(d) }));
const base = loaded[0];
for (const l of loaded) {
  const name = l.dir === top ? basename(top) : `${basename(top)}/${basename(l.dir)}`;
  report(l.errs.length === 0, `${name}/kustomization.yaml: ${l.objs.length} objects, every manifest listed`, l.errs);
  for (const { file, obj } of l.objs) {
    const errs = checkObject(obj);
    report(errs.length === 0, `${name}/${file}: ${obj.kind} ${obj.metadata && obj.metadata.name}`, errs);
  }
  const also = l === base ? [] : base.objs.map((x) => x.obj);
  if (l !== base && l.namespace !== base.namespace) l.errs.push(`namespace ${l.namespace} is not ${base.namespace}`);
  const w = checkWiring(l.objs.map((x) => x.obj), also);
  report(w.length === 0, `${name}: Secrets, keys, claims, selectors, serviceNames and probe ports wire up`, w);
}

// The checks must catch what they are for: every bad/ file fails with its expected error.
const badDir = join(here, "bad");
for (const f of readdirSync(badDir).filter((x) => x.endsWith(".yaml")).sort()) {
  const text = readFileSync(join(badDir, f), "utf8");
  const expect = (/^# expect: (.*)$/m.exec(text) || [])[1];
  const objs = YAML.parseAllDocuments(text).map((d) => d.toJS()).filter(Boolean);
  const errs = objs.flatMap(checkObject).concat(/^# wiring$/m.test(text) ? checkWiring(objs) : []);
  const ok = expect !== undefined && errs.some((e) => e.includes(expect));
  report(ok, `bad/${f} is refused (${expect})`, errs.length ? [`got: ${errs.join("; ")}`] : ["it passed every check"]);
}

console.log(`deploy: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
