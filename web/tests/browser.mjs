// The browser build in a real browser: Debian's Chromium, headless, WebGPU on
// SwiftShader (SPEC §6), driven through playwright-core (no browser download).
// Serves the repository on 127.0.0.1 and checks that
//   - index.html samples to the end, reporting every step, and its final text
//     equals `samnet sample` natively (same checkpoint, seed, steps, length);
//   - infilling through the JS API keeps the known text and equals `samnet infill`;
//   - a hybrid checkpoint (diffusion.kind "hybrid") samples through the JS API
//     as `samnet sample` does natively, keeps an infill's known text, and
//     refuses the gaussian-only eta;
//   - <samnet-denoise> renders from one script tag on another page;
//   - without WebGPU the page says so instead of staying blank.
// Needs web/build to have run. Writes screenshots and timings.json to
// target/browser/. Env: CHROMIUM (default /usr/bin/chromium), SAMNET_BIN
// (default target/debug/samnet).
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
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

const CKPT = "assets/phase1";
const HYBRID_CKPT = "assets/phase1-hybrid";
// Random reveals: every draw comes from the counter hash, as natively.
const HYBRID = { length: 32, steps: 8, seed: 4, order: "random" };
const HYBRID_INFILL = { infill: "ROMEO:\n[___:12]\nJULIET:", steps: 8, seed: 2 };
// SwiftShader takes about 3.4 s per step of this model at L = 64.
const CHECK_LIMIT_S = 400;
const RUN = { steps: 16, length: 64, seed: 7 };
const INFILL = { template: "ROMEO:\n[___:24]\nJULIET:\n[___:24]", steps: 16, seed: 3 };
// Stochastic steps (eta 1): fresh noise drawn on the GPU, the same draws as natively.
const STOCHASTIC = { length: 24, steps: 6, seed: 5, eta: 1 };

function native(args) {
  const text = execFileSync(samnetBin, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return text.replace(/\n$/, "");
}

const MIME = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".safetensors": "application/octet-stream" };
const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(root, path);
  if (!file.startsWith(root) || !existsSync(file)) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const base = `http://127.0.0.1:${server.address().port}`;

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

async function check(name, body) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  const started = Date.now();
  let timer;
  try {
    const limit = new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`no result after ${CHECK_LIMIT_S} s`)), CHECK_LIMIT_S * 1000); });
    await Promise.race([body(page), limit]);
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

await check("index", async (page) => {
  const expected = native(["sample", "--ckpt", CKPT, "--len", `${RUN.length}`, "--steps", `${RUN.steps}`, "--seed", `${RUN.seed}`]);
  const loadStart = Date.now();
  await page.goto(`${base}/index.html?steps=${RUN.steps}&length=${RUN.length}&seed=${RUN.seed}&run=0`);
  const demo = page.locator("samnet-denoise");
  await demo.waitFor();
  const run = await page.evaluate(async () => {
    const demo = document.getElementById("demo");
    const steps = [];
    demo.addEventListener("samnet-step", (e) => steps.push({ step: e.detail.step, ms: e.detail.ms, text: e.detail.text }));
    const ready = new Promise((ok) => demo.addEventListener("samnet-ready", (e) => ok(e.detail), { once: true }));
    const done = new Promise((ok, fail) => {
      demo.addEventListener("samnet-done", (e) => ok(e.detail), { once: true });
      demo.addEventListener("samnet-error", (e) => fail(new Error(e.detail.message)), { once: true });
    });
    document.getElementById("run").click();
    // An error before the model is ready must fail the check, not hang it.
    const { adapter, info } = await Promise.race([ready, done.then(() => { throw new Error("done before ready"); })]);
    const result = await done;
    const rendered = [...demo.shadowRoot.querySelectorAll(".text span")].map((s) => s.textContent).join("");
    return { adapter, info, result, steps, rendered, stats: document.getElementById("stats").textContent };
  });
  timings.page_load_ms = Date.now() - loadStart - run.result.total_ms;
  timings.model_load_ms = run.info.load_ms;
  timings.adapter = run.adapter;
  timings.sample = { ...RUN, total_ms: run.result.total_ms, ms_per_step: run.result.ms_per_step, tokens_per_s: run.result.tokens_per_s, step_ms: run.steps.map((s) => Math.round(s.ms)) };
  assert.deepEqual(run.steps.map((s) => s.step), [...Array(RUN.steps).keys()], "every denoising step is reported, in order");
  assert.equal(run.result.length, RUN.length);
  assert.ok(run.result.text.trim().length > 0, "the final text is not empty");
  assert.equal(run.rendered, run.result.text, "the page shows the final text");
  assert.equal(run.steps.at(-1).text, run.result.text);
  assert.match(run.stats, /tokens\/s/);
  assert.equal(run.result.text, expected, "the browser's text equals `samnet sample` natively for the same seed");
});

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
    const result = await model.sample({ infill: t.template, steps: t.steps, seed: t.seed }, (r) => reports.push(r.known));
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
    return { text: result.text, known: reports[0], cancelled, badOption, badEta, stochastic };
  }, { ckpt: CKPT, t: INFILL, s: STOCHASTIC });
  assert.equal(result.cancelled, "cancelled");
  assert.match(result.badOption, /steps must be/);
  assert.match(result.badEta, /eta must be in \[0, 1\], got 2/);
  assert.equal(result.stochastic, expectedStochastic, "eta 1 in the browser equals `samnet sample --eta 1` natively");
  const chars = [...result.text];
  const template = INFILL.template.replace(/\[___:(\d+)\]/g, (_, n) => "\u0000".repeat(Number(n)));
  assert.equal(chars.length, [...template].length);
  [...template].forEach((c, i) => {
    if (c !== "\u0000") assert.equal(chars[i], c, `known position ${i} kept`);
    assert.equal(result.known[i], c !== "\u0000");
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
    const sampled = await model.sample(h, (r) => steps.push(r.step));
    const infilled = await model.sample(f);
    let badEta = "accepted";
    try { await model.sample({ length: 8, steps: 2, eta: 0.5 }); } catch (e) { badEta = String(e.message ?? e); }
    return { text: sampled.text, steps, infilled: infilled.text, badEta };
  }, { ckpt: HYBRID_CKPT, h, f: HYBRID_INFILL });
  assert.deepEqual(result.steps, [...Array(h.steps).keys()], "every step is reported");
  assert.equal(result.text, expected, "the browser's hybrid sample equals `samnet sample` natively");
  const [before, after] = HYBRID_INFILL.infill.split("[___:12]");
  const chars = [...result.infilled];
  assert.equal(chars.length, before.length + 12 + after.length);
  assert.equal(chars.slice(0, before.length).join(""), before, "known text before the hole kept");
  assert.equal(chars.slice(before.length + 12).join(""), after, "known text after the hole kept");
  assert.match(result.badEta, /eta does not apply to this checkpoint \(diffusion.kind "hybrid"\)/);
});

await check("embed", async (page) => {
  await page.goto(`${base}/web/tests/embed.html`);
  // The element starts on its own: wait for its status line to say it finished (or failed).
  await page.waitForFunction(() => {
    const status = document.querySelector("samnet-denoise")?.shadowRoot?.querySelector(".status");
    return status && (status.classList.contains("error") || /tokens\/s/.test(status.textContent));
  }, null, { timeout: CHECK_LIMIT_S * 1000, polling: 500 });
  const state = await page.evaluate(() => {
    const root = document.querySelector("samnet-denoise").shadowRoot;
    const spans = [...root.querySelectorAll(".text span")];
    const status = root.querySelector(".status");
    return { error: status.classList.contains("error"), status: status.textContent, spans: spans.length, text: spans.map((s) => s.textContent).join("") };
  });
  assert.ok(!state.error, state.status);
  assert.equal(state.spans, 32);
  assert.ok(state.text.trim().length > 0);
  assert.match(state.status, /8 steps/);
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
server.close();
writeFileSync(join(out, "timings.json"), JSON.stringify(timings, null, 2) + "\n");
console.log(JSON.stringify(timings));
process.exit(failed ? 1 : 0);
