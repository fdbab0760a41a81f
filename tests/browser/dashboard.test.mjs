// dashboard.test.mjs - the dashboard in headless Chromium against real kiln-servers (run by run.sh).
//
// Server A has a real pool: a train job submitted from the form reaches
// SUCCEEDED and its loss chart holds exactly the points the API gives
// (and paints them); a running job's chart grows from the event stream
// and the job is cancelled from its page; a 400 shows beside its field;
// a prune job shows its MFLOPs chart against the target band and its
// width bars; a DNA job its depth chart and elastic events; two jobs are
// compared; a job's lineage (init_from, after) links the jobs it names.
// Server B has tokens and a test pool that echoes job names: the
// page asks for the token once, a read-only token's cancel is refused
// plainly, and a job, metric and log line named like HTML run nothing.
// Screenshots (1280x800) go to $KILN_SHOTS. Each test has its own timeout.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {mkdtempSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {chromium} from "playwright-core";

const A = process.env.KILN_URL_A, B = process.env.KILN_URL_B, SHOTS = process.env.KILN_SHOTS;
const ADMIN = process.env.KILN_TOKEN_ADMIN, READ = process.env.KILN_TOKEN_READ;
const DATA = {dataset: "synthetic", synthetic: {train: 256, test: 128, classes: 4, channels: 1, size: 12}};
const MODEL = {arch: "resnet_cifar", image_size: 12, in_channels: 1, num_classes: 4, stem: 8,
               stages: [{width: 8, mids: [8, 8]}, {width: 16, mids: [16, 16]}]};
let ctx, profile;
const consoleErrors = [];

before(async () => {
  profile = mkdtempSync(join(process.env.KILN_BROWSER_TMP || tmpdir(), "chromium-"));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: {width: 1280, height: 800},
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 30000,
  });
});

after(async () => {
  if (ctx) await ctx.close();
  if (profile) rmSync(profile, {recursive: true, force: true});
});

async function newPage() {
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on("console", m => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", e => consoleErrors.push("pageerror: " + e.message));
  return page;
}

/* A page on server B's job list, the token given at its prompt. */
async function signedIn(token) {
  const page = await newPage();
  await page.goto(B + "/#/");
  await page.locator("#token-input").waitFor();
  await page.fill("#token-input", token);
  await page.keyboard.press("Enter");
  await page.locator("h2", {hasText: "Jobs"}).waitFor();
  return page;
}

async function api(base, method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(base + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await r.text();
  return {status: r.status, body: text ? JSON.parse(text) : null};
}

async function waitState(page, want, ms) {
  await page.locator(".job-head .state").filter({hasText: want}).waitFor({timeout: ms});
}

/* The chart's own record of what it drew, against the API's points. */
async function checkChart(page, base, id, title, token) {
  const fig = page.locator(`figure[data-chart="${title}"]`);
  const info = await fig.evaluate(el => ({points: Number(el.dataset.points), series: JSON.parse(el.dataset.series || "[]")}));
  const m = (await api(base, "GET", `/api/v1/jobs/${id}/metrics?max_points=400&limit=100000`, undefined, token)).body;
  assert.ok(info.series.length > 0, `${title}: no series drawn`);
  let total = 0;
  for (const s of info.series) {
    if (s.of) { /* a level line across the chart: the metric's value */
      const v = m.points.filter(p => p.name === s.of).sort((a, b) => a.step - b.step);
      assert.ok(v.length > 0, `${title}: ${s.of} is not a metric of the job`);
      assert.equal(s.last[1], v[v.length - 1].value, `${title}: ${s.of} drawn at another level`);
      total += s.n;
      continue;
    }
    const pts = m.points.filter(p => p.name === s.label && p.value !== null).sort((a, b) => a.step - b.step);
    assert.ok(pts.length > 0, `${title}: series ${s.label} is not a metric of the job`);
    assert.equal(s.n, pts.length, `${title}: ${s.label} drew ${s.n} points, the API has ${pts.length}`);
    const last = pts[pts.length - 1];
    assert.deepEqual(s.last, [last.step, last.value], `${title}: ${s.label} ends elsewhere than the API's last point`);
    total += s.n;
  }
  assert.equal(info.points, total);
  return info;
}

/* Pixels of a colour on the chart's canvas: the line was painted. */
async function painted(page, title, rgb) {
  return page.locator(`figure[data-chart="${title}"] canvas`).first().evaluate((c, [r, g, b]) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40 && d[i + 3] > 100) n++;
    return n;
  }, rgb);
}

const state = {};

test("submit from the form: dry run, then the job SUCCEEDED with its loss chart drawn", {timeout: 60000}, async () => {
  const page = await newPage();
  await page.goto(A + "/#/submit");
  await page.selectOption("#preset-model", "resnet");
  await page.selectOption("#preset-type", "train");
  const spec = JSON.parse(await page.inputValue("#spec-json"));
  Object.assign(spec, {name: "form-train", model: MODEL, data: DATA});
  spec.optim = {lr: 0.05, batch_size: 32, epochs: 4};
  await page.fill("#spec-json", JSON.stringify(spec, null, 2));
  assert.equal(await page.inputValue("#f-optim-epochs"), "4", "the form fields follow the JSON");
  await page.fill("#f-optim-epochs", "5");
  assert.equal(JSON.parse(await page.inputValue("#spec-json")).optim.epochs, 5, "the JSON follows the form fields");
  await page.click("#dry-run-btn");
  await page.locator("#dry-run").waitFor();
  const dry = (await api(A, "POST", "/api/v1/jobs?dry_run=true", JSON.parse(await page.inputValue("#spec-json")))).body;
  assert.equal((await page.textContent("#dry-params")).replace(/,/g, ""), String(dry.params));
  await page.click("#submit-btn");
  await page.waitForURL(/#\/jobs\/[A-Za-z0-9_-]+$/);
  const id = page.url().split("/").pop();
  state.trainId = id;
  await waitState(page, "SUCCEEDED", 45000);
  await page.locator('figure[data-chart="Loss"][data-points]:not([data-points="0"])').waitFor();
  await page.waitForTimeout(400); /* the last redraw after the end */
  const info = await checkChart(page, A, id, "Loss");
  assert.ok(info.series.some(s => s.label === "train/loss"), "train/loss drawn");
  await checkChart(page, A, id, "Accuracy");
  assert.ok(await painted(page, "Loss", [31, 111, 209]) > 20, "the first loss series is painted on the canvas");
  assert.ok((await page.locator("#artifacts a", {hasText: "download"}).count()) >= 1, "artifacts listed with links");
  assert.ok((await page.locator("#history tbody tr").count()) >= 4, "state history with reasons");
  assert.ok((await page.locator("#attempts tbody tr").count()) === 1, "one attempt");
  await page.locator("#logs .log-line").first().waitFor();
  await page.screenshot({path: join(SHOTS, "job-train.png"), fullPage: false});
  await page.close();
});

test("a 400 names its field beside the field", {timeout: 20000}, async () => {
  const page = await newPage();
  await page.goto(A + "/#/submit");
  await page.fill("#f-optim-lr", "-1");
  await page.click("#submit-btn");
  const err = page.locator("#f-optim-lr-err");
  await err.filter({hasText: /\S/}).waitFor();
  assert.match(await err.textContent(), /lr|>|positive|greater|must/i);
  const sameField = await page.locator("#f-optim-lr").evaluate(el => el.closest(".field").contains(document.getElementById("f-optim-lr-err")));
  assert.ok(sameField, "the error sits in the field's own box");
  assert.equal(await page.getAttribute("#f-optim-lr", "aria-invalid"), "true");
  assert.ok(page.url().endsWith("#/submit"), "nothing was submitted");
  await page.close();
});

test("a running job's chart follows the stream, and the job is cancelled from its page", {timeout: 60000}, async () => {
  const r = await api(A, "POST", "/api/v1/jobs", {name: "long-train", model: MODEL, data: DATA,
                                                   optim: {lr: 0.05, batch_size: 32, epochs: 200}});
  assert.equal(r.status, 201);
  const id = r.body.id;
  state.longId = id;
  const page = await newPage();
  await page.goto(A + "/#/jobs/" + id);
  await waitState(page, "RUNNING", 30000);
  const fig = page.locator('figure[data-chart="Loss"]');
  await page.locator('figure[data-chart="Loss"]:not([data-points="0"])').waitFor({timeout: 20000});
  const n0 = Number(await fig.getAttribute("data-points"));
  await page.waitForFunction(n => Number(document.querySelector('figure[data-chart="Loss"]').dataset.points) > n, n0, {timeout: 20000});
  await page.click("#cancel-job");
  await waitState(page, "CANCELLED", 30000);
  const job = (await api(A, "GET", "/api/v1/jobs/" + id)).body;
  assert.equal(job.state, "CANCELLED");
  assert.equal(job.reason, "USER_CANCELLED");
  await page.close();
});

test("a prune job's page: expected MFLOPs against the target band, widths before and after", {timeout: 60000}, async () => {
  const r = await api(A, "POST", "/api/v1/jobs", {name: "dmcp-small", type: "prune", seed: 2, model: MODEL, data: DATA,
    optim: {lr: 0.05, batch_size: 32, epochs: 2},
    prune: {method: "dmcp", target_mflops: 0.15, warmup_epochs: 1, search_epochs: 1, search: {batch_size: 32}, calib_batches: 2}});
  assert.equal(r.status, 201);
  const id = r.body.id;
  const page = await newPage();
  await page.goto(A + "/#/jobs/" + id);
  await waitState(page, "SUCCEEDED", 45000);
  await page.locator("#search .barchart .bar-row").first().waitFor();
  await page.waitForTimeout(400);
  const info = await checkChart(page, A, id, "Expected MFLOPs and the target band");
  const labels = info.series.map(s => s.label);
  for (const want of ["search/expected_mflops", "target/mflops", "target/band_low_mflops", "target/band_high_mflops"])
    assert.ok(labels.includes(want), `MFLOPs chart has ${want}: ${labels}`);
  const target = info.series.find(s => s.label === "target/mflops");
  assert.ok(Math.abs(target.last[1] - 0.15) < 1e-9, "the target line is at the job's target");
  await checkChart(page, A, id, "Top-1 of the max, min and expected sub-nets");
  const rows = await page.locator("#search .bar-row").evaluateAll(els => els.map(e => [Number(e.dataset.before), Number(e.dataset.after)]));
  assert.ok(rows.length >= 3, "a bar per prunable layer");
  assert.ok(rows.every(([b, a]) => a > 0 && a <= b), "after <= before on every layer");
  assert.ok(rows.some(([b, a]) => a < b), "some layer was narrowed");
  await page.screenshot({path: join(SHOTS, "job-prune.png"), fullPage: true});
  await page.close();
});

test("a job's lineage: the job it starts from and waits for, as links with their states", {timeout: 40000}, async () => {
  const t = await api(A, "POST", "/api/v1/jobs", {name: "lineage-src", seed: 3, model: MODEL, data: DATA,
    optim: {lr: 0.05, batch_size: 32, epochs: 1}});
  assert.equal(t.status, 201);
  const src = t.body.id;
  const r = await api(A, "POST", "/api/v1/jobs", {name: "lineage-next", seed: 3, data: DATA,
    init_from: {job: src}, after: [src], optim: {lr: 0.01, batch_size: 32, epochs: 1}});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const page = await newPage();
  await page.goto(A + "/#/jobs/" + r.body.id);
  await waitState(page, "SUCCEEDED", 30000);
  await page.reload();
  await waitState(page, "SUCCEEDED", 10000);
  const sec = page.locator("#lineage");
  await sec.waitFor();
  const text = await sec.innerText();
  assert.match(text, new RegExp("starts from job " + src + " \\(model.safetensors\\)"));
  assert.match(text, new RegExp("runs after " + src + " \\(SUCCEEDED\\)"));
  assert.match(text, /weights SHA-256 [0-9a-f]{16}/);
  assert.equal(await sec.locator(`a[href="#/jobs/${src}"]`).count(), 2, "both name the source job as a link");
  await page.screenshot({path: join(SHOTS, "job-lineage.png"), fullPage: true});
  await page.close();
});

test("a DNA job's page: per-stage expected depth, elastic events marked", {timeout: 60000}, async () => {
  const r = await api(A, "POST", "/api/v1/jobs", {name: "dna-grow", type: "adapt", seed: 3, model: MODEL, data: DATA,
    optim: {lr: 0.05, batch_size: 32, epochs: 2},
    adapt: {method: "dna", target_ratio: 1.3, warmup_epochs: 1, search_epochs: 3, search: {batch_size: 32}, calib_batches: 2,
            arch: {lr: 20, init: "existing"}, elastic: {check_every: 2, settle_steps: 2}}});
  assert.equal(r.status, 201);
  const id = r.body.id;
  state.dnaId = id;
  const page = await newPage();
  await page.goto(A + "/#/jobs/" + id);
  await waitState(page, "SUCCEEDED", 50000);
  await page.locator("#search .barchart .bar-row").first().waitFor();
  await page.waitForTimeout(400);
  const depth = await checkChart(page, A, id, "Expected depth per stage (elastic events marked)");
  assert.ok(depth.series.filter(s => /expected_depth\/stage\d/.test(s.label)).length >= 2, "a series per stage");
  const events = (await api(A, "GET", `/api/v1/jobs/${id}/metrics?names=search/elastic/events&limit=100000`)).body.points;
  const n = events.length ? Math.max(...events.map(p => p.value)) : 0;
  const marked = Number(await page.getAttribute('figure[data-chart="Expected depth per stage (elastic events marked)"]', "data-markers") || 0);
  assert.ok(n > 0, "the job had elastic events");
  assert.ok(marked > 0 && marked <= n, `elastic events marked (${marked} of ${n})`);
  await checkChart(page, A, id, "Expected MFLOPs and the target band");
  await page.screenshot({path: join(SHOTS, "job-dna.png"), fullPage: true});
  await page.close();
});

test("the job list, live, and two jobs compared", {timeout: 30000}, async () => {
  const page = await newPage();
  await page.goto(A + "/#/");
  await page.locator(`#job-rows tr[data-id="${state.trainId}"]`).waitFor();
  assert.ok((await page.locator("#job-rows tr").count()) >= 4);
  /* a new job appears without a reload (the event stream) */
  const r = await api(A, "POST", "/api/v1/jobs", {name: "appears-live", priority: 90, model: MODEL, data: DATA, optim: {epochs: 1, batch_size: 32}});
  await page.locator(`#job-rows tr[data-id="${r.body.id}"]`).waitFor({timeout: 10000});
  /* filters and sorting are the server's */
  await page.selectOption("#f-type", "prune");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction(() => [...document.querySelectorAll("#job-rows tr[data-id]")].length === 1);
  await page.selectOption("#f-type", "");
  await page.selectOption("#f-order", "priority");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction(id => document.querySelector("#job-rows tr[data-id]")?.dataset.id === id, r.body.id);
  await page.selectOption("#f-order", "created_at");
  await page.click("form.filters button[type=submit]");
  await page.locator(`#job-rows tr[data-id="${state.trainId}"]`).waitFor();
  await page.screenshot({path: join(SHOTS, "jobs.png")});
  /* compare: select two, open the view, both curves are drawn */
  for (const id of [state.trainId, state.longId])
    await page.locator(`#job-rows tr[data-id="${id}"] input[type=checkbox]`).check();
  await page.click("#compare-selected");
  await page.waitForURL(/#\/compare\?ids=/);
  await page.selectOption("#compare-metric", "train/loss");
  await page.locator('figure.chart:not([data-points="0"])').waitFor();
  const series = JSON.parse(await page.locator("figure.chart").getAttribute("data-series"));
  assert.equal(series.length, 2, "one curve per job");
  assert.ok(series.every(s => s.n > 0));
  await page.screenshot({path: join(SHOTS, "compare.png")});
  await page.goto(A + "/#/pools");
  await page.locator('tr[data-pool="real-pool"]').waitFor();
  await page.close();
});

test("tokens: asked once; a read-only token's cancel is refused plainly", {timeout: 30000}, async () => {
  const page = await signedIn(READ);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("kiln_token")), READ);
  const r = await api(B, "POST", "/api/v1/jobs", {name: "slow", model: MODEL, data: DATA, optim: {epochs: 1, max_steps: 100000, batch_size: 32}}, ADMIN);
  assert.equal(r.status, 201);
  await page.goto(B + "/#/jobs/" + r.body.id);
  await waitState(page, "RUNNING", 15000);
  assert.equal(await page.locator("#token-input").count(), 0, "asked only once");
  await page.click("#cancel-job");
  await page.locator("#banner", {hasText: "submit"}).waitFor();
  assert.match(await page.textContent("#banner"), /lacks the 'submit' scope/);
  await api(B, "POST", `/api/v1/jobs/${r.body.id}/cancel`, undefined, ADMIN);
  await page.close();
});

test("a job, metric and log line named like HTML are shown as text and run nothing", {timeout: 30000}, async () => {
  const evil = '<img src=x onerror="window.__xss=1;document.title=\'pwned\'">';
  const page = await signedIn(ADMIN);
  const r = await api(B, "POST", "/api/v1/jobs", {name: evil, model: MODEL, data: DATA, optim: {epochs: 1, max_steps: 10, batch_size: 32}}, ADMIN);
  assert.equal(r.status, 201);
  await page.locator("#job-rows a.job-link", {hasText: "onerror"}).waitFor();
  assert.equal(await page.locator("#job-rows a.job-link", {hasText: "onerror"}).textContent(), evil);
  await page.goto(B + "/#/jobs/" + r.body.id);
  await waitState(page, "SUCCEEDED", 20000);
  await page.locator("#logs .log-text", {hasText: "job name"}).waitFor();
  assert.equal(await page.locator("#logs .log-text", {hasText: "job name"}).textContent(), "fakepool: job name " + evil);
  // The live page may draw the <details> again (closed) after a click: open it
  // from the page, and read the cell whether or not it is visible at that moment.
  await page.locator(".other").first().evaluate(d => { d.open = true; });
  await page.locator(".other td", {hasText: "onerror"}).first().waitFor({state: "attached"});
  assert.equal(await page.locator(".other td", {hasText: "onerror"}).first().textContent(), evil);
  assert.equal(await page.locator("h2").first().textContent(), evil);
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined, "nothing ran");
  assert.notEqual(await page.title(), "pwned");
  assert.equal(await page.locator("main img").count(), 0, "no element was made from the name");
  const csp = (await fetch(B + "/")).headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  await page.close();
});

test("a retried job's chart drops what the lost attempt drew after its checkpoint", {timeout: 50000}, async () => {
  const page = await signedIn(ADMIN);
  // B's test pool fails the first attempt of a job named "retried" at step 300
  // (20 ms a step, a checkpoint every 50): the retry resumes from step 250, and
  // the server drops the points attempt 1 logged for steps 251..299
  const r = await api(B, "POST", "/api/v1/jobs", {name: "retried", model: MODEL, data: DATA, optim: {epochs: 1, max_steps: 400, batch_size: 32}}, ADMIN);
  assert.equal(r.status, 201);
  const id = r.body.id;
  await page.goto(B + "/#/jobs/" + id);
  // the page is live on attempt 1 before it fails: it sees the retry happen
  await page.waitForFunction(() => {
    const s = JSON.parse(document.querySelector('figure[data-chart="Loss"]')?.dataset.series || "[]");
    return s.some(x => x.label === "train_loss" && x.n > 0);
  }, undefined, {timeout: 15000});
  // every step the loss chart ends at, as it is redrawn
  await page.evaluate(() => {
    window.__ends = [];
    const fig = document.querySelector('figure[data-chart="Loss"]');
    new MutationObserver(() => {
      const s = JSON.parse(fig.dataset.series || "[]").find(x => x.label === "train_loss");
      if (s && s.last) window.__ends.push(s.last[0]);
    }).observe(fig, {attributes: true, attributeFilter: ["data-series"]});
  });
  const early = (await api(B, "GET", `/api/v1/jobs/${id}`, undefined, ADMIN)).body;
  assert.equal(early.attempt, 1, "the page opened on attempt 1");
  assert.ok(early.progress.step < 290, `the page opened before the failure (at step ${early.progress.step})`);
  await waitState(page, "SUCCEEDED", 30000);
  const j = (await api(B, "GET", `/api/v1/jobs/${id}`, undefined, ADMIN)).body;
  assert.equal(j.attempts.length, 2);
  assert.ok(j.metrics_dropped > 0, `the retry dropped points (metrics_dropped ${j.metrics_dropped})`);
  await page.waitForTimeout(400); /* the last draw */
  const info = await checkChart(page, B, id, "Loss", ADMIN);
  const loss = info.series.find(s => s.label === "train_loss");
  assert.equal(loss.n, 400, "train_loss: each of the 400 steps once");
  // when the retry started, the chart went back to its checkpoint (step 250) and
  // did not keep attempt 1's points past it until attempt 2 drew over them
  const ends = await page.evaluate(() => window.__ends);
  const back = ends.findIndex((e, i) => i > 0 && e < ends[i - 1]);
  assert.ok(back > 0, `the chart kept attempt 1's points past the checkpoint: its end never went back (${ends.join(" ")})`);
  assert.ok(ends[back] >= 250, `the chart went back to step ${ends[back]}, before the checkpoint's 250 (${ends.join(" ")})`);
  await page.screenshot({path: `${SHOTS}/job-retried.png`, fullPage: true});
  await page.close();
});

test("no script errors on any page", () => {
  const real = consoleErrors.filter(e => !/status of (400|401|403|404|409)/.test(e));
  assert.deepEqual(real, []);
});
