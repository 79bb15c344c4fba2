// <samnet-denoise>: a SamNet sample resolving from noise, on the visitor's GPU.
//
//   <script type="module" src="https://…/web/samnet-denoise.js"></script>
//   <samnet-denoise src="https://…/assets/phase1-hybrid">SamNet demo (needs JavaScript)</samnet-denoise>
//
// From another origin, web/ (this module, web/pkg/*) and the checkpoint must
// be served with Access-Control-Allow-Origin; the element's text content shows
// until the module runs, so say there what a visitor sees if it cannot load.
//
// Attributes: src (checkpoint directory URL, required), steps, length, seed
// (steps and length default to a run sized to the adapter: short on a
// software one), temperature (0: most likely token; above 0: drawn), top-p
// (draws only from the likeliest tokens holding that much probability), eta
// (gaussian: 0 deterministic steps, up to 1 fresh noise in each), order
// (hybrid: "random", "confident", "left" or "blocks" reveals), guidance (hybrid:
// w ≥ 0, each step also run with the known text hidden and pushed away from
// that; twice the work), prompt (text held at the start),
// infill (a template with [___], [___:N] or ▢ holes), before / after / hole
// (code completion at a cursor: the text on each side, the hole's size in
// positions, 32 by default; the result's `filled` is the hole), ends (code
// completion: the text ends with the hole, filled with a body that ends, as
// `samnet complete --ends`; an error where text follows the cursor; on when
// present and not "false"), autoplay ("false" to
// wait for run(); otherwise it starts once scrolled into view), loop (sample
// again, with the next seed, a few seconds after each run while in view).
// Each position shows its current token, shaded by the model's doubt; held
// positions are underlined; hybrid checkpoints show frozen positions solid
// and still-noisy ones muted, masked ones a dot where still masked. After a run a scrubber replays every step.
// Styling: ::part(text | status | progress | replay | replay-button |
// scrubber | scrubber-label | legend) and the custom properties --samnet-font,
// --samnet-held, --samnet-noisy, --samnet-noisy-ink, --samnet-fresh,
// --samnet-accent, --samnet-min-height.
// Events: samnet-ready {adapter, gpu, info}, samnet-step {step report},
// samnet-done {result}, samnet-stopped {step, steps}, samnet-error {message}.
// Methods: run(), cancel().

const PKG = new URL("./pkg/samnet_web.js", import.meta.url).href;
let wasm = null;
// src URL → {model: Promise<SamNet>, tail, owner, warm}: elements showing the
// same checkpoint share one model and take turns on it.
const models = new Map();

/// The wasm module, imported and initialised once.
function loadWasm() {
  wasm ??= (async () => {
    let module;
    try {
      module = await import(PKG);
    } catch {
      throw new Error(`could not load ${PKG}: missing (run web/build), or on another origin without Access-Control-Allow-Origin`);
    }
    try {
      await module.default();
    } catch (e) {
      throw new Error(`could not load SamNet's WebAssembly next to ${PKG} (${e.message ?? e}); from another origin it needs Access-Control-Allow-Origin`);
    }
    return module;
  })();
  wasm.catch(() => { wasm = null; });
  return wasm;
}

function loadModel(url) {
  if (!models.has(url)) {
    const model = loadWasm().then(({ SamNet }) => SamNet.fromUrl(url));
    // A failed load is retried by the next run.
    model.catch(() => models.delete(url));
    models.set(url, { model, tail: Promise.resolve(), owner: null, warm: new Set() });
  }
  return models.get(url);
}

let adapterInfoPromise = null;

/// The browser's description of its WebGPU adapter: {vendor, architecture,
/// device, description, software} (software: a fallback/CPU adapter such as
/// SwiftShader, llvmpipe or lavapipe); null without one.
export function adapterInfo() {
  adapterInfoPromise ??= (async () => {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const fields = { vendor: info.vendor ?? "", architecture: info.architecture ?? "", device: info.device ?? "", description: info.description ?? "" };
    const text = Object.values(fields).join(" ");
    const software = Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software/i.test(text);
    return { ...fields, software };
  })();
  return adapterInfoPromise;
}

/// "google · swiftshader · …": the adapter's non-empty fields.
export function describeAdapter(info) {
  if (!info) return "no WebGPU adapter";
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
  const unique = parts.filter((p, i) => parts.indexOf(p) === i);
  return (unique.join(" · ") || "WebGPU adapter (the browser does not name it)") + (info.software ? " (software)" : "");
}

// What a run on this adapter costs, ms per step per position: measured by
// the last finished run, else assumed from the adapter's class (SwiftShader
// takes ~4.5 s per step of 64 positions; a GPU a few ms for 256).
let measuredMsPerPosition = null;
const ASSUMED_MS_PER_POSITION = { software: 70, hardware: 0.2 };
const RUN_BUDGET_MS = 30000;

/// Steps and length for a run of about half a minute on this adapter: the
/// checkpoint-sized 64 × 256 on a GPU, a short run on a software adapter.
export async function suggestedRun() {
  const info = await adapterInfo();
  const perPosition = measuredMsPerPosition ?? ASSUMED_MS_PER_POSITION[info?.software ? "software" : "hardware"];
  for (const length of [256, 128, 64]) {
    const steps = Math.floor(RUN_BUDGET_MS / (perPosition * length));
    if (steps >= 16 || length === 64) return { steps: Math.max(8, Math.min(64, steps)), length };
  }
}

const LOOP_PAUSE_MS = 4000;
// What a masked checkpoint's still-masked positions show (their guess is in the title).
const MASK_GLYPH = "·";

const STYLE = `
  :host { display: block; max-width: 100%; box-sizing: border-box; }
  :host([hidden]) { display: none; }
  .text {
    margin: 0; min-height: var(--samnet-min-height, 6em);
    font: var(--samnet-font, 14px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
    /* Spaces wrap like letters (break-spaces) instead of hanging past the
       edge with their shading; words break only when longer than a line. */
    white-space: break-spaces; overflow-wrap: anywhere;
  }
  .text span { border-radius: 2px; }
  .text span.held { text-decoration: underline; text-decoration-color: var(--samnet-held, #4a7); text-underline-offset: 2px; }
  .text span.noisy {
    opacity: calc(1 - 0.7 * var(--doubt, 0));
    background: color-mix(in srgb, var(--samnet-noisy, #ff9f3c) calc(var(--doubt, 0) * 45%), transparent);
  }
  .hybrid span.noisy { color: var(--samnet-noisy-ink, #6f7c95); }
  .text span.fresh { background: var(--samnet-fresh, #c9ecd4); }
  .bar { display: flex; flex-wrap: wrap; align-items: center; gap: .3em .8em; margin-top: .5em; font-size: 12px; color: #666; }
  progress { flex: 0 1 10em; min-width: 5em; height: .6em; accent-color: var(--samnet-accent, #2d7ff9); }
  .status { flex: 1 1 14em; min-width: 0; }
  .status.error { color: #b22; }
  .replay { display: flex; flex-wrap: wrap; align-items: center; gap: .3em .8em; margin-top: .4em; font-size: 12px; color: #666; }
  .replay[hidden], .legend[hidden], progress[hidden] { display: none; }
  .replay input { flex: 1 1 10em; min-width: 6em; accent-color: var(--samnet-accent, #2d7ff9); }
  .replay button { font: inherit; }
  .legend { font-size: 12px; color: #888; margin-top: .3em; }
  .legend span { padding: 0 .2em; border-radius: 2px; }
`;

export class SamNetDenoise extends HTMLElement {
  static observedAttributes = ["src"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <pre class="text" part="text"></pre>
      <div class="bar"><progress part="progress" hidden></progress><span class="status" part="status" role="status"></span></div>
      <div class="replay" part="replay" hidden>
        <button type="button" part="replay-button">▶ replay</button>
        <input type="range" part="scrubber" min="0" value="0" aria-label="denoising step">
        <span part="scrubber-label"></span>
      </div>
      <div class="legend" part="legend" hidden></div>`;
    const $ = (selector) => root.querySelector(selector);
    this.textEl = $(".text");
    this.statusEl = $(".status");
    this.progressEl = $("progress");
    this.replayEl = $(".replay");
    this.scrubber = $("input[type=range]");
    this.scrubberLabel = $("[part=scrubber-label]");
    this.legendEl = $(".legend");
    this.scrubber.addEventListener("input", () => { this.stopReplay(); this.showRecorded(Number(this.scrubber.value)); });
    $("[part=replay-button]").addEventListener("click", () => this.replay());
    this.spans = [];
    this.entry = null;
    this.history = [];
    this.runId = 0;
    this.loops = 0;
    this.visible = false;
  }

  connectedCallback() {
    if (!navigator.gpu) {
      this.fail("This browser has no WebGPU (navigator.gpu is missing): SamNet samples on your GPU, so try a recent Chrome, Edge or Safari, or enable WebGPU.");
      return;
    }
    this.observer = new IntersectionObserver((entries) => this.onVisibility(entries.at(-1).isIntersecting), { threshold: 0.1 });
    this.observer.observe(this);
    if (this.autoplay) this.setStatus("starts when scrolled into view");
  }

  disconnectedCallback() {
    this.observer?.disconnect();
    clearTimeout(this.loopTimer);
    this.cancel();
  }

  attributeChangedCallback(name, before, after) {
    if (name === "src" && before !== null && before !== after) this.entry = null;
  }

  get autoplay() { return this.getAttribute("autoplay") !== "false"; }

  onVisibility(visible) {
    this.visible = visible;
    if (visible && this.autoplay && !this.started) this.run();
    if (visible && this.loopDue) this.run();
  }

  setStatus(text, kind = "") {
    this.statusEl.className = `status ${kind}`.trim();
    this.statusEl.textContent = text;
  }

  /// progress: null (hidden), "busy" (indeterminate) or [done, total].
  setProgress(progress) {
    const bar = this.progressEl;
    bar.hidden = progress === null;
    if (progress === "busy") bar.removeAttribute("value");
    else if (progress) [bar.value, bar.max] = progress;
  }

  fail(message) {
    this.setStatus(message, "error");
    this.setProgress(null);
    this.dispatchEvent(new CustomEvent("samnet-error", { detail: { message } }));
  }

  options(suggested) {
    const int = (name) => (this.hasAttribute(name) ? Number.parseInt(this.getAttribute(name), 10) : undefined);
    const text = (name) => this.getAttribute(name) || undefined;
    const float = (name) => (this.hasAttribute(name) ? Number.parseFloat(this.getAttribute(name)) : undefined);
    // A boolean attribute: present and not "false".
    const flag = (name) => this.hasAttribute(name) && this.getAttribute(name) !== "false";
    const infill = text("infill");
    const cursor = this.hasAttribute("before") || this.hasAttribute("after")
      ? { before: this.getAttribute("before") ?? "", after: this.getAttribute("after") ?? "", hole: int("hole") ?? 32, ends: flag("ends") }
      : undefined;
    const options = {
      steps: int("steps") ?? suggested.steps,
      // An infill template sets its own length.
      length: infill ? undefined : int("length") ?? suggested.length,
      // Each loop samples with the next seed.
      seed: (int("seed") ?? 0) + this.loops,
      temperature: float("temperature"), top_p: float("top-p"), eta: float("eta"), order: text("order"),
      guidance: float("guidance"), prompt: text("prompt"), infill, cursor,
    };
    return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  }

  async ensureModel() {
    if (this.entry) return this.entry;
    const src = this.getAttribute("src");
    if (!src) throw new Error("<samnet-denoise> needs a src attribute: the checkpoint directory's URL");
    const url = new URL(src, document.baseURI).href;
    this.setStatus("loading the model…");
    this.setProgress("busy");
    const entry = loadModel(url);
    let model;
    try {
      model = await entry.model;
    } catch (e) {
      throw new Error(`could not load the model from ${url}: ${e.message ?? e}`);
    }
    this.entry = entry;
    const info = model.info;
    this.kind = info.kind;
    this.textEl.classList.toggle("hybrid", info.kind !== "gaussian");
    const fresh = "<span style='background: var(--samnet-fresh, #c9ecd4)'>green</span>";
    this.legendEl.innerHTML = "<span style='text-decoration: underline'>underlined</span>: your text · " +
      ({
        hybrid: `solid: frozen to a letter · ${fresh}: frozen this step · muted: still noisy (its current guess), `,
        masked: `solid: revealed · ${fresh}: revealed this step · ${MASK_GLYPH}: still masked (hover: its current guess), `,
      }[info.kind] ?? "faint: unsure, ") +
      "<span style='background: color-mix(in srgb, var(--samnet-noisy, #ff9f3c) 35%, transparent)'>shaded</span> by the model's doubt";
    this.legendEl.hidden = false;
    this.dispatchEvent(new CustomEvent("samnet-ready", { detail: { adapter: model.adapter, gpu: await adapterInfo(), info } }));
    return entry;
  }

  /// Samples with the current attributes; resolves to the result (null if
  /// stopped or failed).
  async run() {
    this.started = true;
    this.loopDue = false;
    clearTimeout(this.loopTimer);
    this.cancel();
    const id = ++this.runId;
    this.stopRequested = false;
    const current = () => this.runId === id;
    let ticker = null;
    try {
      const entry = await this.ensureModel();
      const model = await entry.model;
      const options = this.options(await suggestedRun());
      if (!current()) return null;
      const sizeKey = options.infill ?? options.length;
      const compiling = !entry.warm.has(sizeKey);
      const began = performance.now();
      const waiting = () => {
        const seconds = Math.round((performance.now() - began) / 1000);
        this.setStatus(compiling
          ? `compiling shaders for this GPU and size (first run only)… ${seconds} s`
          : `first step… ${seconds} s`);
      };
      this.history = [];
      this.stepMs = [];
      this.compiling = compiling;
      this.replayEl.hidden = true;
      this.stopReplay();
      const turn = entry.tail.then(() => {
        if (this.stopRequested || !current()) throw new Error("cancelled");
        entry.owner = this;
        waiting();
        this.setProgress("busy");
        ticker = setInterval(waiting, 1000);
        return model.sample(options, (step) => {
          clearInterval(ticker);
          entry.warm.add(sizeKey);
          this.record(step);
        });
      });
      entry.tail = turn.catch(() => {}).finally(() => { entry.owner = null; });
      const result = await turn;
      this.noteSpeed(result);
      const gpu = describeAdapter(await adapterInfo());
      this.setStatus(`${result.steps} steps · ${result.ms_per_step.toFixed(1)} ms/step · ${Math.round(result.tokens_per_s)} tokens/s · ${gpu}`);
      this.setProgress([result.steps, result.steps]);
      this.offerReplay();
      this.dispatchEvent(new CustomEvent("samnet-done", { detail: result }));
      this.scheduleLoop();
      return result;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (message === "cancelled") {
        if (current() || this.stopRequested) this.onStopped();
      } else if (current()) {
        this.fail(message);
      }
      return null;
    } finally {
      clearInterval(ticker);
    }
  }

  /// Stops this element's sample after its current step (or before it starts).
  cancel() {
    this.stopRequested = true;
    if (this.entry?.owner === this) this.entry.model.then((m) => m.cancel());
  }

  onStopped() {
    const last = this.history.at(-1);
    const steps = last?.steps;
    this.setStatus(last ? `stopped at step ${last.step + 1}/${steps}` : "stopped before the first step");
    this.setProgress(last ? [last.step + 1, steps] : null);
    this.offerReplay();
    this.dispatchEvent(new CustomEvent("samnet-stopped", { detail: { step: last?.step ?? -1, steps } }));
  }

  noteSpeed(result) {
    // The first step of a compiling run is mostly compiling.
    const times = this.compiling ? this.stepMs.slice(1) : this.stepMs;
    if (times.length) measuredMsPerPosition = times.reduce((a, b) => a + b) / times.length / result.length;
  }

  scheduleLoop() {
    if (!this.hasAttribute("loop")) return;
    this.loopTimer = setTimeout(() => {
      this.loops += 1;
      if (this.visible) this.run();
      else this.loopDue = true;
    }, LOOP_PAUSE_MS);
  }

  record(step) {
    this.history.push({ step: step.step, steps: step.steps, pieces: step.pieces, confidence: step.confidence, known: step.known, frozen: step.frozen });
    this.stepMs.push(step.ms);
    this.show(this.history.length - 1);
    this.setProgress([step.step + 1, step.steps]);
    this.setStatus(`step ${step.step + 1}/${step.steps} · ${this.timeLeft(step)}`);
    this.dispatchEvent(new CustomEvent("samnet-step", { detail: step }));
  }

  timeLeft(step) {
    const left = step.steps - step.step - 1;
    if (left === 0) return "finishing";
    const times = (this.compiling ? this.stepMs.slice(1) : this.stepMs).slice(-8);
    if (!times.length) return "estimating time left…";
    const seconds = (left * times.reduce((a, b) => a + b)) / times.length / 1000;
    return seconds < 1 ? "under a second left" : `about ${seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`} left`;
  }

  /// Draws recorded step `index`: known positions underlined, frozen ones
  /// solid (green the step they froze), the rest shaded by doubt.
  show(index) {
    const s = this.history[index];
    const before = this.history[index - 1]?.frozen;
    const n = s.pieces.length;
    if (this.spans.length !== n) {
      this.textEl.replaceChildren();
      this.spans = Array.from({ length: n }, () => this.textEl.appendChild(document.createElement("span")));
    }
    const masked = this.kind === "masked";
    for (let i = 0; i < n; i++) {
      const span = this.spans[i];
      const hidden = masked && !s.frozen[i] && !s.known[i];
      span.textContent = hidden ? MASK_GLYPH : s.pieces[i];
      span.title = hidden ? s.pieces[i] : "";
      const fresh = s.frozen[i] && !s.known[i] && before && !before[i];
      span.className = s.known[i] ? "held" : fresh ? "fresh" : s.frozen[i] ? "frozen" : "noisy";
      span.style.setProperty("--doubt", s.frozen[i] ? "0" : (1 - s.confidence[i]).toFixed(2));
    }
  }

  offerReplay() {
    const n = this.history.length;
    if (!n) return;
    this.scrubber.max = String(n - 1);
    this.scrubber.value = String(n - 1);
    this.labelScrubber(n - 1);
    this.replayEl.hidden = false;
  }

  labelScrubber(index) {
    const s = this.history[index];
    this.scrubberLabel.textContent = `step ${s.step + 1}/${s.steps}`;
  }

  showRecorded(index) {
    this.show(index);
    this.labelScrubber(index);
  }

  /// Plays the recorded steps from the first, about 2.5 s in all.
  replay() {
    this.stopReplay();
    const n = this.history.length;
    let index = 0;
    const frame = () => {
      this.scrubber.value = String(index);
      this.showRecorded(index);
      index += 1;
      if (index < n) this.replayTimer = setTimeout(frame, Math.max(40, 2500 / n));
    };
    frame();
  }

  stopReplay() {
    clearTimeout(this.replayTimer);
  }
}

customElements.define("samnet-denoise", SamNetDenoise);
