// The browser build in a real browser: Debian's Chromium, headless, WebGPU on
// SwiftShader (SPEC §6), driven through playwright-core (no browser download).
// Serves the repository on two 127.0.0.1 ports: the site (with CORS headers,
// as a host of the embed must send them) and "another site" (without), and
// checks that
//   - index.html defaults to the hybrid checkpoint and samples to the end:
//     a visible compiling phase, every step reported with a progress bar,
//     the prompt shown at every step, frozen and noisy positions told apart,
//     the scrubber replaying steps, the run's settings in the URL, the
//     adapter's vendor/architecture, no console errors, and (random reveals)
//     the text of `samnet sample` natively;
//   - with the gaussian checkpoint, the page's text equals `samnet sample`
//     natively and the prompt shows at every step;
//   - at 360 px the page fits, a software adapter gets a short default run,
//     infill disables the length, the text (long runs of spaces, a word
//     longer than a line) stays inside its box, and Stop says it stopped;
//   - infilling through the JS API keeps the known text at every step and
//     equals `samnet infill`; eta 1 equals `samnet sample --eta 1`;
//   - a hybrid checkpoint samples through the JS API as `samnet sample` does
//     natively, its frozen mask only grows, and it refuses eta;
//   - the code view fills a hole as `samnet complete` does, with `ends` as
//     `samnet complete --ends`, and refuses `ends` where code follows the
//     cursor;
//   - <samnet-denoise> from another origin (README-style: one script tag)
//     renders, takes custom properties and ::part styles, and starts a
//     second element only once scrolled into view;
//   - a module script or checkpoint that another origin serves without CORS,
//     and an unreadable checkpoint, give a visible message, not a blank box;
//   - without WebGPU the page says so instead of staying blank.
// Needs web/build to have run. Writes screenshots and timings.json to
// target/browser/. Env: CHROMIUM (default /usr/bin/chromium), SAMNET_BIN
// (default target/debug/samnet).
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from "node:fs";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = resolve(fileURLToPath(import.meta.url), "../../..");
const out = join(root, "target/browser");
mkdirSync(out, { recursive: true });
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const samnetBin = resolve(root, process.env.SAMNET_BIN ?? "target/debug/samnet");
for (const [what, path] of [["Chromium", chromiumPath], ["samnet", samnetBin], ["the wasm package (run web/build)", join(root, "web/pkg/samnet_web.js")]]) {
  if (!existsSync(path)) {
    console.error(`error: ${what} not found at ${path}`);
    process.exit(1);
  }
}

// No gaussian model ships (assets/ holds the hybrid, phase-4 and two code
// models): the gaussian checks run a tiny one trained here for two steps.
const CKPT = "target/browser/gaussian/checkpoint";
const HYBRID_CKPT = "assets/phase1-hybrid";
const INSTRUCT_CKPT = "assets/phase4";
const CODE_CKPT = "assets/code";
// The code model for bodies that end (`ends`, as `complete --ends`).
const COMPLETE_CKPT = "assets/code-complete";
// Random reveals: every draw comes from the counter hash, as natively (the
// confident order ranks float confidences, which may tie differently).
const HYBRID = { length: 32, steps: 8, seed: 4, order: "random" };
const HYBRID_INFILL = { infill: "ROMEO:\n[___:12]\nJULIET:", steps: 8, seed: 2 };
// SwiftShader takes about 4.5 s per step of this model at L = 64, and ~12 s
// compiling the shaders on a page's first step: runs are short.
const CHECK_LIMIT_S = 400;
const PAGE_HYBRID = { steps: 6, len: 40, seed: 7, order: "random", prompt: "ROMEO:\n" };
const PAGE_GAUSSIAN = { steps: 8, len: 64, seed: 7, prompt: "JULIET:" };
const INFILL = { template: "ROMEO:\n[___:24]\nJULIET:\n[___:24]", steps: 8, seed: 3 };
// Stochastic steps (eta 1): fresh noise drawn on the GPU, the same draws as natively.
const STOCHASTIC = { length: 24, steps: 6, seed: 5, eta: 1 };
// A held run of spaces and a word longer than a 360 px line.
const NARROW_PROMPT = `KING:${" ".repeat(60)}${"x".repeat(60)}\n`;

function native(args) {
  const text = execFileSync(samnetBin, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return text.replace(/\n$/, "");
}

rmSync(join(out, "gaussian"), { recursive: true, force: true });
native(["train", "--preset", "tiny", "--steps", "2", "--no-progress", "--data", join(root, "../shared/data/tinyshakespeare.txt"), "--out", join(out, "gaussian")]);

const MIME = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".safetensors": "application/octet-stream" };
// The repository's files; `cors` adds Access-Control-Allow-Origin. An .html
// file asked for with ?base=URL gets <base href=URL>: its relative URLs (the
// script tag, the checkpoint) then point at another origin.
function serve(cors) {
  return createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const path = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(root, path);
    const headers = cors ? { "access-control-allow-origin": "*" } : {};
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, headers).end("not found");
      return;
    }
    let body = readFileSync(file);
    const base = url.searchParams.get("base");
    if (base && extname(file) === ".html") {
      body = body.toString().replace(/^<!doctype html>\n/i, (doctype) => `${doctype}<base href="${base.replaceAll('"', "&quot;")}">\n`);
    }
    res.writeHead(200, { ...headers, "content-type": MIME[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  });
}
async function listen(server) {
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return `http://127.0.0.1:${server.address().port}`;
}
const site = serve(true), otherSite = serve(false);
const base = await listen(site);
const other = await listen(otherSite);

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader",
    "--no-sandbox", "--disable-gpu-sandbox", "--no-first-run", "--disable-background-networking",
    // Playwright gives every launch a fresh profile (SPEC's --user-data-dir).
    "--disable-component-update", "--disable-sync",
  ],
});
const timings = {};
let failed = false;

async function check(name, body, viewport = { width: 1100, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  const started = Date.now();
  let timer;
  try {
    const limit = new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`no result after ${CHECK_LIMIT_S} s`)), CHECK_LIMIT_S * 1000); });
    await Promise.race([body(page, logs), limit]);
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.stack ?? e}\n  page console:\n    ${logs.join("\n    ")}`);
  } finally {
    clearTimeout(timer);
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true }).catch(() => {});
    await page.close();
  }
}

function assertNoConsoleErrors(logs) {
  const errors = logs.filter((l) => l.startsWith("error:") || l.startsWith("pageerror:"));
  assert.deepEqual(errors, [], "no console errors");
}

// Clicks Sample on index.html and records the run from the element: every
// status line, and at every step the report and what the DOM shows. `stopAfter`
// clicks Stop once that many steps have been shown.
async function runPage(page, stopAfter = null) {
  return page.evaluate(async (stopAfter) => {
    const demo = document.getElementById("demo");
    const root = demo.shadowRoot;
    const statuses = [];
    new MutationObserver(() => statuses.push(root.querySelector(".status").textContent))
      .observe(root.querySelector(".status"), { childList: true, characterData: true, subtree: true });
    const steps = [];
    demo.addEventListener("samnet-step", (e) => {
      const spans = [...root.querySelectorAll(".text span")];
      const { step, steps: total, ms, text, pieces, known, frozen } = e.detail;
      steps.push({ step, total, ms, text, pieces, known, frozen, shown: spans.map((s) => s.textContent), classes: spans.map((s) => s.className), progress: [root.querySelector("progress").value, root.querySelector("progress").max] });
      if (steps.length === stopAfter) document.getElementById("stop").click();
    });
    const ready = new Promise((ok) => demo.addEventListener("samnet-ready", (e) => ok(e.detail), { once: true }));
    const ended = new Promise((ok, fail) => {
      demo.addEventListener("samnet-done", (e) => ok({ result: e.detail }), { once: true });
      demo.addEventListener("samnet-stopped", (e) => ok({ stopped: e.detail }), { once: true });
      demo.addEventListener("samnet-error", (e) => fail(new Error(e.detail.message)), { once: true });
    });
    document.getElementById("run").click();
    // An error before the model is ready must fail the check, not hang it.
    const { adapter, gpu, info } = await Promise.race([ready, ended.then(() => { throw new Error("ended before ready"); })]);
    const end = await ended;
    const rendered = [...root.querySelectorAll(".text span")].map((s) => s.textContent).join("");
    return { adapter, gpu, info, ...end, steps, statuses, rendered, stats: document.getElementById("stats").textContent, status: root.querySelector(".status").textContent };
  }, stopAfter);
}

// Known positions show their text at every step, in the report and the DOM.
function assertKnownShown(steps, prompt) {
  const chars = [...prompt];
  for (const s of steps) {
    chars.forEach((c, i) => {
      assert.ok(s.known[i], `step ${s.step}: position ${i} is known`);
      assert.equal(s.pieces[i], c, `step ${s.step}: the report shows known position ${i}`);
      assert.equal(s.shown[i], c, `step ${s.step}: the page shows known position ${i}`);
      assert.equal(s.classes[i], "held");
    });
  }
}

await check("index", async (page, logs) => {
  const p = PAGE_HYBRID;
  const expected = native(["sample", "--ckpt", HYBRID_CKPT, "--len", `${p.len}`, "--steps", `${p.steps}`, "--seed", `${p.seed}`, "--order", p.order, "--prompt", p.prompt]);
  const loadStart = Date.now();
  await page.goto(`${base}/index.html?steps=${p.steps}&len=${p.len}&seed=${p.seed}&order=${p.order}&mode=prompt&text=${encodeURIComponent(p.prompt)}&run=0`);
  await page.locator("samnet-denoise").waitFor();
  assert.equal(await page.locator("#model").inputValue(), HYBRID_CKPT, "the hybrid checkpoint is the default");
  assert.ok(await page.locator("#eta").isDisabled(), "eta is gaussian-only");
  const [sample, stop] = [await page.locator("#run").boundingBox(), await page.locator("#stop").boundingBox()];
  assert.equal(sample.y, stop.y, "Sample and Stop share a row");
  const run = await runPage(page);
  timings.page_load_ms = Date.now() - loadStart - run.result.total_ms;
  timings.model_load_ms = run.info.load_ms;
  timings.adapter = { ...run.adapter, ...run.gpu };
  timings.sample = { ...p, total_ms: run.result.total_ms, ms_per_step: run.result.ms_per_step, tokens_per_s: run.result.tokens_per_s, step_ms: run.steps.map((s) => Math.round(s.ms)) };
  assert.equal(run.info.kind, "hybrid");
  assert.ok(run.statuses.some((s) => /compiling shaders/.test(s)), `a compiling phase is shown: ${run.statuses.join(" | ")}`);
  assert.ok(run.statuses.some((s) => /step \d+\/6 · about \d+ s left/.test(s)), `time left is shown: ${run.statuses.join(" | ")}`);
  assert.deepEqual(run.steps.map((s) => s.step), [...Array(p.steps).keys()], "every denoising step is reported, in order");
  assert.deepEqual(run.steps.map((s) => s.progress), run.steps.map((s) => [s.step + 1, p.steps]), "the progress bar follows the steps");
  assertKnownShown(run.steps, p.prompt);
  // Frozen positions only accumulate; mid-run some are frozen and some still noisy.
  run.steps.forEach((s, k) => {
    const before = run.steps[k - 1]?.frozen ?? s.known;
    before.forEach((f, i) => f && assert.ok(s.frozen[i], `step ${s.step}: position ${i} stays frozen`));
    s.classes.forEach((c, i) => assert.equal(c === "noisy", !s.frozen[i], `step ${s.step}: position ${i} is ${c}`));
  });
  assert.ok(run.steps[1].classes.includes("noisy") && run.steps[1].classes.some((c) => c === "frozen" || c === "fresh"), "frozen and noisy positions are told apart");
  assert.ok(run.steps.at(-1).frozen.every(Boolean), "all frozen at the end");
  assert.equal(run.result.length, p.len);
  assert.equal(run.rendered, run.result.text, "the page shows the final text");
  assert.equal(run.steps.at(-1).text, run.result.text);
  assert.match(run.stats, /tokens\/s/);
  assert.match(run.stats, /swiftshader/i, "the adapter's architecture is shown");
  assert.match(run.status, /6 steps · .* tokens\/s · .*swiftshader/i);
  assert.equal(run.result.text, expected, "the browser's text equals `samnet sample` natively for the same seed");
  // The run's settings are in the URL.
  const params = new URL(page.url()).searchParams;
  for (const [key, value] of [["model", HYBRID_CKPT], ["steps", "6"], ["len", "40"], ["seed", "7"], ["order", "random"], ["mode", "prompt"], ["text", p.prompt]]) {
    assert.equal(params.get(key), value, `URL parameter ${key}`);
  }
  // The scrubber replays the recorded steps.
  const replayed = await page.evaluate(() => {
    const root = document.getElementById("demo").shadowRoot;
    const scrubber = root.querySelector("[part=scrubber]");
    scrubber.value = "0";
    scrubber.dispatchEvent(new Event("input"));
    return { visible: !root.querySelector("[part=replay]").hidden, max: scrubber.max, shown: [...root.querySelectorAll(".text span")].map((s) => s.textContent), label: root.querySelector("[part=scrubber-label]").textContent };
  });
  assert.ok(replayed.visible);
  assert.equal(replayed.max, String(p.steps - 1));
  assert.deepEqual(replayed.shown, run.steps[0].pieces, "scrubbing to the first step shows it");
  assert.equal(replayed.label, `step 1/${p.steps}`);
  assertNoConsoleErrors(logs);
});

await check("index-gaussian", async (page, logs) => {
  const p = PAGE_GAUSSIAN;
  const expected = native(["sample", "--ckpt", CKPT, "--len", `${p.len}`, "--steps", `${p.steps}`, "--seed", `${p.seed}`, "--prompt", p.prompt]);
  // The old parameter names (length=, prompt=) still work.
  await page.goto(`${base}/index.html?model=${CKPT}&steps=${p.steps}&length=${p.len}&seed=${p.seed}&prompt=${encodeURIComponent(p.prompt)}&run=0`);
  await page.locator("samnet-denoise").waitFor();
  assert.equal(await page.locator("#model").inputValue(), CKPT, "a checkpoint from the link is offered");
  const run = await runPage(page);
  assert.equal(run.info.kind, "gaussian");
  assert.ok(await page.locator("#order").isDisabled(), "once loaded, the model's kind disables order (hybrid and masked only)");
  assert.deepEqual(run.steps.map((s) => s.step), [...Array(p.steps).keys()]);
  assertKnownShown(run.steps, p.prompt);
  assert.equal(run.rendered, run.result.text);
  assert.equal(run.result.text, expected, "the browser's text equals `samnet sample` natively for the same seed");
  assertNoConsoleErrors(logs);
});

await check("narrow", async (page, logs) => {
  await page.goto(`${base}/index.html?run=0`);
  // A software adapter gets a short default run.
  await page.waitForFunction(() => /software/.test(document.getElementById("adapter").textContent));
  await page.waitForFunction(() => Number(document.getElementById("steps").value) <= 16);
  assert.ok(Number(await page.locator("#length").inputValue()) <= 64, "a short default length on a software adapter");
  await page.selectOption("#mode", "infill");
  assert.ok(await page.locator("#length").isDisabled(), "infill takes its length from the template");
  await page.selectOption("#mode", "prompt");
  await page.fill("#condition-text", NARROW_PROMPT);
  await page.fill("#length", "136");
  await page.fill("#steps", "2");
  const run = await runPage(page, 1);
  assert.deepEqual(run.stopped, { step: 0, steps: 2 });
  assert.match(run.status, /stopped at step 1\/2/, "the element says it stopped");
  assert.match(await page.locator("#state").textContent(), /stopped at step 1\/2/, "the page says it stopped");
  assert.ok(await page.locator("#stop").isDisabled());
  assertKnownShown(run.steps, NARROW_PROMPT);
  const layout = await page.evaluate(() => {
    const root = document.getElementById("demo").shadowRoot;
    const box = root.querySelector(".text").getBoundingClientRect();
    const outside = [];
    root.querySelectorAll(".text span").forEach((span, i) => {
      for (const r of span.getClientRects()) {
        if (r.width && (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)) outside.push(i);
      }
    });
    const wide = [...document.querySelectorAll("body *")].filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > innerWidth + 0.5).map((e) => e.id || e.tagName);
    const lines = new Set([...root.querySelectorAll(".text span")].slice(5, 125).map((s) => Math.round(s.getBoundingClientRect().top)));
    return { outside, wide, scrollWidth: document.documentElement.scrollWidth, innerWidth, lines: lines.size };
  });
  assert.deepEqual(layout.outside, [], "every position's box lies inside the text box");
  assert.deepEqual(layout.wide, [], "nothing runs off the right edge");
  assert.ok(layout.scrollWidth <= layout.innerWidth, `no horizontal scroll: ${layout.scrollWidth} > ${layout.innerWidth}`);
  assert.ok(layout.lines >= 3, "the spaces and the long word wrap");
  assertNoConsoleErrors(logs);
}, { width: 360, height: 740 });

await check("infill-api", async (page) => {
  const expected = native(["infill", INFILL.template, "--ckpt", CKPT, "--steps", `${INFILL.steps}`, "--seed", `${INFILL.seed}`]);
  const s = STOCHASTIC;
  const expectedStochastic = native(["sample", "--ckpt", CKPT, "--len", `${s.length}`, "--steps", `${s.steps}`, "--seed", `${s.seed}`, "--eta", `${s.eta}`]);
  await page.goto(`${base}/web/tests/blank.html`);
  const result = await page.evaluate(async ({ ckpt, t, s }) => {
    const { default: init, SamNet } = await import("/web/pkg/samnet_web.js");
    await init();
    const model = await SamNet.fromUrl(`/${ckpt}`);
    const reports = [];
    const result = await model.sample({ infill: t.template, steps: t.steps, seed: t.seed }, (r) => reports.push({ known: r.known, frozen: r.frozen, pieces: r.pieces }));
    const stochastic = (await model.sample(s)).text;
    // cancel() stops a running sample: its promise rejects with "cancelled".
    const running = model.sample({ length: 16, steps: 50 }, () => model.cancel());
    const cancelled = await running.then(() => "finished", (e) => String(e.message ?? e));
    const refusal = async (options) => {
      try { await model.sample(options); } catch (e) { return String(e.message ?? e); }
      return "accepted";
    };
    const badOption = await refusal({ steps: 0 });
    const badEta = await refusal({ eta: 2 });
    return { text: result.text, reports, cancelled, badOption, badEta, stochastic };
  }, { ckpt: CKPT, t: INFILL, s: STOCHASTIC });
  assert.equal(result.cancelled, "cancelled");
  assert.match(result.badOption, /steps must be/);
  assert.match(result.badEta, /eta must be in \[0, 1\], got 2/);
  assert.equal(result.stochastic, expectedStochastic, "eta 1 in the browser equals `samnet sample --eta 1` natively");
  const chars = [...result.text];
  const template = [...INFILL.template.replace(/\[___:(\d+)\]/g, (_, n) => "\u0000".repeat(Number(n)))];
  assert.equal(chars.length, template.length);
  assert.equal(result.reports.length, INFILL.steps);
  template.forEach((c, i) => {
    if (c !== "\u0000") assert.equal(chars[i], c, `known position ${i} kept`);
    for (const [step, r] of result.reports.entries()) {
      assert.equal(r.known[i], c !== "\u0000");
      // A gaussian checkpoint freezes nothing but the known positions, which show their text.
      assert.equal(r.frozen[i], c !== "\u0000");
      if (c !== "\u0000") assert.equal(r.pieces[i], c, `step ${step} shows known position ${i}`);
    }
  });
  assert.equal(result.text, expected, "the browser's infill equals `samnet infill` natively");
});

await check("hybrid-api", async (page) => {
  const h = HYBRID;
  const expected = native(["sample", "--ckpt", HYBRID_CKPT, "--len", `${h.length}`, "--steps", `${h.steps}`, "--seed", `${h.seed}`, "--order", h.order]);
  await page.goto(`${base}/web/tests/blank.html`);
  const result = await page.evaluate(async ({ ckpt, h, f }) => {
    const { default: init, SamNet } = await import("/web/pkg/samnet_web.js");
    await init();
    const model = await SamNet.fromUrl(`/${ckpt}`);
    const steps = [];
    const sampled = await model.sample(h, (r) => steps.push({ step: r.step, frozen: r.frozen }));
    const infilled = await model.sample(f);
    let badEta = "accepted";
    try { await model.sample({ length: 8, steps: 2, eta: 0.5 }); } catch (e) { badEta = String(e.message ?? e); }
    return { text: sampled.text, steps, infilled: infilled.text, badEta, info: model.info };
  }, { ckpt: HYBRID_CKPT, h, f: HYBRID_INFILL });
  assert.equal(result.info.kind, "hybrid");
  assert.deepEqual(result.steps.map((s) => s.step), [...Array(h.steps).keys()], "every step is reported");
  const counts = result.steps.map((s) => s.frozen.filter(Boolean).length);
  result.steps.forEach((s, k) => k && result.steps[k - 1].frozen.forEach((f, i) => f && assert.ok(s.frozen[i], `step ${k}: ${i} stays frozen`)));
  assert.ok(counts[0] < h.length && counts.at(-1) === h.length, `positions freeze over the run: ${counts}`);
  assert.equal(result.text, expected, "the browser's hybrid sample equals `samnet sample` natively");
  const [before, after] = HYBRID_INFILL.infill.split("[___:12]");
  const chars = [...result.infilled];
  assert.equal(chars.length, before.length + 12 + after.length);
  assert.equal(chars.slice(0, before.length).join(""), before, "known text before the hole kept");
  assert.equal(chars.slice(before.length + 12).join(""), after, "known text after the hole kept");
  assert.match(result.badEta, /eta does not apply to this checkpoint \(diffusion.kind "hybrid"\)/);
});

// The other shipped models: the instruction model from a prompt through the
// API, the code model through the page's code view (a hole at the caret).
const INSTRUCTION = { prompt: "### Instruction:\nName a colour.\n\n### Response:\n", length: 24, steps: 3, seed: 1, order: "random" };
const CODE = { before: "def square(x):\n    ", after: "\n\nprint(square(3))\n", hole: 6, len: 32, steps: 3, seed: 2 };

await check("instruct-api", async (page) => {
  const t = INSTRUCTION;
  const expected = native(["sample", "--ckpt", INSTRUCT_CKPT, "--len", `${t.length}`, "--steps", `${t.steps}`, "--seed", `${t.seed}`, "--order", t.order, "--prompt", t.prompt]);
  await page.goto(`${base}/web/tests/blank.html`);
  const result = await page.evaluate(async ({ ckpt, t }) => {
    const { default: init, SamNet } = await import("/web/pkg/samnet_web.js");
    await init();
    const model = await SamNet.fromUrl(`/${ckpt}`);
    return { text: (await model.sample(t)).text, info: model.info };
  }, { ckpt: INSTRUCT_CKPT, t });
  assert.equal(result.info.vocab_size, 4096, "the BPE model loads");
  assert.ok(result.text.startsWith(t.prompt), result.text);
  assert.equal(result.text, expected, "the browser's response equals `samnet sample` natively");
});

await check("code-view", async (page, logs) => {
  const c = CODE;
  const source = join(out, "square.py");
  writeFileSync(source, c.before + c.after);
  const expected = native(["complete", "--ckpt", CODE_CKPT, "--file", source, "--line", "2", "--col", "5", "--hole", `${c.hole}`, "--len", `${c.len}`, "--steps", `${c.steps}`, "--seed", `${c.seed}`, "--order", "random"]);
  const query = new URLSearchParams({ model: CODE_CKPT, mode: "cursor", text: c.before + c.after, cursor: `${c.before.length}`, hole: `${c.hole}`, len: `${c.len}`, steps: `${c.steps}`, seed: `${c.seed}`, order: "random", run: "0" });
  await page.goto(`${base}/index.html?${query}`);
  await page.locator("samnet-denoise").waitFor();
  assert.ok(!(await page.locator("#hole").isDisabled()), "the hole size is asked for in the code view");
  const run = await runPage(page);
  assert.equal(run.result.filled, expected, "the page's hole equals `samnet complete` natively");
  // The whitespace before the caret joins the hole (a BPE tokenizes it with the next word).
  assert.ok(run.rendered.startsWith(c.before.trimEnd()), "the code before the caret is shown, held");
  assert.ok(run.rendered.includes(c.after.trim()), "the code after the caret is shown, held");
  assert.match(await page.locator("#share").getAttribute("href"), new RegExp(`mode=cursor.*cursor=${c.before.length}`));
  assertNoConsoleErrors(logs);
});

// The element's state: its status line and text.
const elementState = (selector) => {
  const root = document.querySelector(selector).shadowRoot;
  const status = root.querySelector(".status");
  const spans = [...root.querySelectorAll(".text span")];
  return { error: status.classList.contains("error"), status: status.textContent, spans: spans.length, text: spans.map((s) => s.textContent).join("") };
};
const finished = (selector) => {
  const status = document.querySelector(selector)?.shadowRoot?.querySelector(".status");
  return status && (status.classList.contains("error") || /tokens\/s/.test(status.textContent));
};

// `ends` (as `complete --ends`): at the end of the text the separator is
// known right after the hole; where code follows the cursor, an error.
await check("code-view-ends", async (page, logs) => {
  const c = CODE;
  const source = join(out, "square-ends.py");
  writeFileSync(source, `${c.before}\n`);
  const expected = native(["complete", "--ckpt", COMPLETE_CKPT, "--file", source, "--line", "2", "--col", "5", "--hole", `${c.hole}`, "--len", `${c.len}`, "--steps", `${c.steps}`, "--seed", `${c.seed}`, "--order", "random", "--ends"]);
  const query = (text) => new URLSearchParams({ model: COMPLETE_CKPT, mode: "cursor", text, cursor: `${c.before.length}`, hole: `${c.hole}`, ends: "1", len: `${c.len}`, steps: `${c.steps}`, seed: `${c.seed}`, order: "random", run: "0" });
  await page.goto(`${base}/index.html?${query(`${c.before}\n`)}`);
  await page.locator("samnet-denoise").waitFor();
  assert.ok(await page.locator("#ends").isChecked(), "ends=1 ticks ends");
  assert.ok(!(await page.locator("#ends").isDisabled()), "ends is offered in the code view");
  const run = await runPage(page);
  assert.equal(run.result.filled, expected, "the page's hole equals `samnet complete --ends` natively");
  // Known: the code before the cursor, then (after the hole) the separator alone.
  const known = run.steps[0].known.map(Number).join("");
  assert.match(known, /^1+0+10*$/, "one known position right after the hole");
  assert.equal(run.steps[0].pieces[known.lastIndexOf("1")], "<|endoftext|>", "the separator follows the hole");
  assert.match(await page.locator("#share").getAttribute("href"), /ends=1/);
  await page.selectOption("#mode", "prompt");
  assert.ok(await page.locator("#ends").isDisabled(), "ends is the code view's alone");
  assertNoConsoleErrors(logs);
  // Code after the cursor: the element says why it does not run.
  await page.goto(`${base}/index.html?${query(c.before + c.after)}`);
  await page.locator("samnet-denoise").waitFor();
  await assert.rejects(runPage(page), /ends completes at the end of the text, and text follows the cursor/);
  const state = await page.evaluate(elementState, "#demo");
  assert.ok(state.error, "the status shows the error");
  assert.match(state.status, /text follows the cursor/);
});

await check("embed", async (page, logs) => {
  // README-style: a page on another origin with one script tag, loading the
  // module, the wasm and the checkpoint from this site (which sends CORS).
  await page.goto(`${other}/web/tests/embed.html?base=${encodeURIComponent(`${base}/web/tests/embed.html`)}`);
  await page.waitForFunction(finished, "#top", { timeout: CHECK_LIMIT_S * 1000, polling: 500 });
  const state = await page.evaluate(elementState, "#top");
  assert.ok(!state.error, state.status);
  assert.equal(state.spans, 32);
  assert.ok(state.text.startsWith("ROMEO:"));
  assert.match(state.status, /4 steps/);
  const styled = await page.evaluate(() => {
    const root = document.getElementById("top").shadowRoot;
    const parts = [...root.querySelectorAll("[part]")].map((e) => e.getAttribute("part"));
    return { parts, held: getComputedStyle(root.querySelector(".text span.held")).textDecorationColor, status: getComputedStyle(root.querySelector("[part=status]")).color };
  });
  for (const part of ["text", "status", "progress", "replay", "replay-button", "scrubber", "scrubber-label", "legend"]) assert.ok(styled.parts.includes(part), `part ${part}`);
  assert.equal(styled.held, "rgb(1, 2, 3)", "--samnet-held colours the held underline");
  assert.equal(styled.status, "rgb(4, 5, 6)", "::part(status) styles the status line");
  // The element below the fold waits until it is scrolled into view.
  assert.match((await page.evaluate(elementState, "#below")).status, /when scrolled into view/);
  await page.locator("#below").scrollIntoViewIfNeeded();
  await page.waitForFunction(finished, "#below", { timeout: CHECK_LIMIT_S * 1000, polling: 500 });
  const below = await page.evaluate(elementState, "#below");
  assert.ok(!below.error, below.status);
  assert.equal(below.spans, 8);
  assertNoConsoleErrors(logs);
});

await check("load-errors", async (page) => {
  // The module script from an origin without CORS never runs: the element's
  // own text says so.
  await page.goto(`${base}/web/tests/embed.html?base=${encodeURIComponent(`${other}/web/tests/embed.html`)}`);
  assert.equal(await page.evaluate(() => customElements.get("samnet-denoise")), undefined);
  assert.match(await page.locator("#top").innerText(), /could not load[\s\S]*Access-Control-Allow-Origin/);
  // A checkpoint from an origin without CORS, and one that is not a checkpoint.
  await page.route("**/broken/**", (route) => {
    const name = new URL(route.request().url()).pathname.split("/").pop();
    const body = name === "model.safetensors" ? "not safetensors" : readFileSync(join(root, CKPT, name));
    route.fulfill({ status: 200, body });
  });
  await page.goto(`${base}/web/tests/blank.html`);
  const messages = await page.evaluate(async (sources) => {
    await import("/web/samnet-denoise.js");
    return Promise.all(sources.map((src) => new Promise((ok) => {
      const element = document.createElement("samnet-denoise");
      element.setAttribute("src", src);
      element.addEventListener("samnet-error", () => ok(element.shadowRoot.querySelector(".status.error").textContent), { once: true });
      document.body.append(element);
    })));
  }, [`${other}/${CKPT}`, "/broken"]);
  assert.match(messages[0], /could not fetch .*Access-Control-Allow-Origin/);
  assert.match(messages[1], /model\.safetensors: not a valid safetensors file/);
  for (const status of await page.locator("samnet-denoise .status").all()) assert.ok(await status.isVisible());
});

await check("no-webgpu", async (page) => {
  await page.addInitScript(() => { delete Navigator.prototype.gpu; });
  await page.goto(`${base}/index.html`);
  await page.locator("#no-webgpu").waitFor({ state: "visible" });
  assert.ok(await page.locator("#run").isDisabled());
  const message = await page.evaluate(() => document.getElementById("demo").shadowRoot.querySelector(".status").textContent);
  assert.match(message, /WebGPU/);
});

await browser.close();
site.close();
otherSite.close();
writeFileSync(join(out, "timings.json"), JSON.stringify(timings, null, 2) + "\n");
console.log(JSON.stringify(timings));
process.exit(failed ? 1 : 0);
