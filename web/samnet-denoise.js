// <samnet-denoise>: a SamNet sample resolving from noise, on the visitor's GPU.
//
//   <script type="module" src="https://…/web/samnet-denoise.js"></script>
//   <samnet-denoise src="https://…/assets/phase1" steps="64" length="256" seed="0"></samnet-denoise>
//
// Attributes: src (checkpoint directory URL, required), steps, length, seed,
// temperature (0: most likely token; above 0: drawn), eta (0: deterministic
// steps; up to 1: fresh noise in each),
// prompt (text held at the start), infill (a template with [___], [___:N] or ▢
// holes), autoplay ("false" to wait for run()). Each position shows its current
// best token, shaded by the model's confidence; held positions are underlined.
// Events: samnet-ready {adapter, info}, samnet-step {step report},
// samnet-done {result}, samnet-error {message}. Methods: run(), cancel().
import init, { SamNet } from "./pkg/samnet_web.js";

let wasmReady = null;
// src URL → {model: Promise<SamNet>, tail, owner}: elements showing the same
// checkpoint share one model and take turns on it.
const models = new Map();

function loadModel(src) {
  const url = new URL(src, document.baseURI).href;
  if (!models.has(url)) {
    wasmReady ??= init();
    models.set(url, { model: wasmReady.then(() => SamNet.fromUrl(url)), tail: Promise.resolve(), owner: null });
  }
  return models.get(url);
}

const STYLE = `
  :host { display: block; font: 14px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  .text { white-space: pre-wrap; word-break: break-all; margin: 0; }
  .text span { border-radius: 2px; }
  .text span.held { text-decoration: underline; text-decoration-color: #4a7; }
  .status { color: #777; font-size: 12px; margin-top: .4em; }
  .error { color: #b22; }
`;

export class SamNetDenoise extends HTMLElement {
  static observedAttributes = ["src"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style><pre class="text" part="text"></pre><div class="status" part="status"></div>`;
    this.textEl = root.querySelector(".text");
    this.statusEl = root.querySelector(".status");
    this.spans = [];
    this.entry = null;
  }

  connectedCallback() {
    if (!navigator.gpu) {
      this.fail("This browser has no WebGPU (navigator.gpu is missing): SamNet samples on your GPU, so try a recent Chrome, Edge or Safari, or enable WebGPU.");
      return;
    }
    if (this.getAttribute("autoplay") !== "false") this.run();
  }

  attributeChangedCallback(name, before, after) {
    if (name === "src" && before !== null && before !== after) this.entry = null;
  }

  fail(message) {
    this.statusEl.className = "status error";
    this.statusEl.textContent = message;
    this.dispatchEvent(new CustomEvent("samnet-error", { detail: { message } }));
  }

  options() {
    const int = (name) => (this.hasAttribute(name) ? Number.parseInt(this.getAttribute(name), 10) : undefined);
    const text = (name) => this.getAttribute(name) || undefined;
    const float = (name) => (this.hasAttribute(name) ? Number.parseFloat(this.getAttribute(name)) : undefined);
    return { steps: int("steps"), length: int("length"), seed: int("seed"), temperature: float("temperature"), eta: float("eta"), prompt: text("prompt"), infill: text("infill") };
  }

  async ensureModel() {
    if (this.entry) return this.entry;
    const src = this.getAttribute("src");
    if (!src) throw new Error("<samnet-denoise> needs a src attribute: the checkpoint directory's URL");
    this.statusEl.textContent = "loading the model…";
    const entry = loadModel(src);
    const model = await entry.model;
    this.entry = entry;
    this.dispatchEvent(new CustomEvent("samnet-ready", { detail: { adapter: model.adapter, info: model.info } }));
    return entry;
  }

  /// Samples with the current attributes; resolves to the result (null if cancelled or failed).
  async run() {
    this.statusEl.className = "status";
    try {
      const entry = await this.ensureModel();
      const model = await entry.model;
      this.cancel();
      const options = this.options();
      const turn = entry.tail.then(() => {
        entry.owner = this;
        return model.sample(options, (step) => this.draw(step));
      });
      entry.tail = turn.catch(() => {}).finally(() => { entry.owner = null; });
      const result = await turn;
      const adapter = model.adapter.name || "WebGPU";
      this.statusEl.textContent = `${result.steps} steps · ${result.ms_per_step.toFixed(1)} ms/step · ${Math.round(result.tokens_per_s)} tokens/s · ${adapter}`;
      this.dispatchEvent(new CustomEvent("samnet-done", { detail: result }));
      return result;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (message !== "cancelled") this.fail(message);
      return null;
    }
  }

  /// Stops this element's running sample after its current step.
  cancel() {
    if (this.entry?.owner === this) this.entry.model.then((m) => m.cancel());
  }

  draw(step) {
    const n = step.pieces.length;
    if (this.spans.length !== n) {
      this.textEl.replaceChildren();
      this.spans = Array.from({ length: n }, () => this.textEl.appendChild(document.createElement("span")));
    }
    for (let i = 0; i < n; i++) {
      const span = this.spans[i];
      span.textContent = step.pieces[i];
      const c = step.confidence[i];
      // Low confidence: faint and warm; certain: solid ink.
      span.style.opacity = (0.25 + 0.75 * c).toFixed(2);
      span.style.background = step.known[i] ? "" : `rgba(255, 170, 60, ${(0.35 * (1 - c)).toFixed(2)})`;
      span.className = step.known[i] ? "held" : "";
    }
    this.statusEl.textContent = `step ${step.step + 1}/${step.steps} · t = ${step.timestep} · ${step.ms.toFixed(1)} ms`;
    this.dispatchEvent(new CustomEvent("samnet-step", { detail: step }));
  }
}

customElements.define("samnet-denoise", SamNetDenoise);
