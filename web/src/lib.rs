//! SamNet in the browser: the same core and WGSL shaders as the native CLI,
//! behind a small JS API.
//!
//! ```js
//! import init, { SamNet } from "./pkg/samnet_web.js";
//! await init();
//! const model = await SamNet.fromUrl("assets/phase1-hybrid");
//! const out = await model.sample({ length: 256, steps: 64, seed: 0 }, (s) => draw(s));
//! ```
//!
//! `onStep` receives, for every denoising step, `{step, steps, timestep, text,
//! pieces, tokens, confidence, known, frozen, ms}` (known positions show
//! their known text at every step); `cancel()` stops a running sample (its
//! promise then rejects with "cancelled").

mod request;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::rc::Rc;

use samnet_core::conditioning::text_end;
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::model::Model;
use samnet_core::sample::{Sampler, StepOutput};
use samnet_core::schedule::NoiseSchedule;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::Snapshot;
use samnet_core::{Error, config::Config};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

pub use request::SampleRequest;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker).
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_url(url: &str) -> js_sys::Promise;
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A loaded checkpoint on the visitor's GPU.
#[wasm_bindgen]
pub struct SamNet {
    inner: Rc<Inner>,
}

struct Inner {
    gpu: Gpu,
    model: Model,
    tokenizer: Tokenizer,
    config: Config,
    /// The sampler of the last length, reused: buffers are sized per length.
    sampler: RefCell<Option<Rc<Sampler>>>,
    busy: Cell<bool>,
    cancel: Cell<bool>,
    load_ms: f64,
}

#[derive(Serialize)]
struct AdapterInfo {
    name: String,
    backend: String,
    device_type: String,
    driver: String,
    shader_f16: bool,
    subgroups: bool,
    timestamps: bool,
    max_buffer_size: u64,
    max_storage_buffer_binding_size: u64,
}

#[derive(Serialize)]
struct ModelInfo {
    parameters: usize,
    vocab_size: usize,
    d_model: usize,
    n_layers: usize,
    max_seq_len: usize,
    sample_steps: usize,
    timesteps: usize,
    /// diffusion.kind: "gaussian", "masked" or "hybrid".
    kind: &'static str,
    /// masked and hybrid: the default reveal order, "random", "confident", "left" or "blocks".
    reveal_order: &'static str,
    load_ms: f64,
}

#[derive(Serialize)]
struct StepReport {
    step: usize,
    steps: usize,
    timestep: usize,
    text: String,
    /// The text of each position's best token.
    pieces: Vec<String>,
    tokens: Vec<u32>,
    confidence: Vec<f32>,
    /// Positions held known (prompt or infill context).
    known: Vec<bool>,
    /// Positions settled: the known ones and (masked, hybrid) those frozen so far.
    frozen: Vec<bool>,
    /// Milliseconds since the previous report (the step, its readback included).
    ms: f64,
}

#[derive(Serialize)]
struct SampleResult {
    text: String,
    /// `cursor` requests: the text the hole was filled with.
    filled: Option<String>,
    tokens: Vec<u32>,
    steps: usize,
    length: usize,
    total_ms: f64,
    ms_per_step: f64,
    tokens_per_s: f64,
}

/// Fetches `url` whole; errors name the URL and the HTTP status.
async fn fetch_bytes(url: &str) -> Result<Vec<u8>, JsError> {
    // A rejected fetch says only "Failed to fetch": a refused cross-origin
    // read looks the same as a network failure.
    let response = JsFuture::from(fetch_url(url)).await.map_err(|_| {
        js_error(format!(
            "could not fetch {url}: the network failed, or it is on another \
             origin that does not allow this page (its server must send \
             Access-Control-Allow-Origin)"
        ))
    })?;
    let response: web_sys::Response = response.unchecked_into();
    if !response.ok() {
        return Err(js_error(format!(
            "fetching {url}: HTTP {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let buffer = response
        .array_buffer()
        .map_err(|e| js_error(format!("reading {url}: {e:?}")))?;
    let buffer = JsFuture::from(buffer)
        .await
        .map_err(|e| js_error(format!("reading {url}: {e:?}")))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

#[wasm_bindgen]
impl SamNet {
    /// Loads `base`/{config.json, tokenizer.json, model.safetensors}.
    #[wasm_bindgen(js_name = fromUrl)]
    pub async fn from_url(base: String) -> Result<SamNet, JsError> {
        let start = now_ms();
        let base = base.trim_end_matches('/').to_string();
        let mut files = HashMap::new();
        for name in ["config.json", "tokenizer.json", "model.safetensors"] {
            files.insert(name, fetch_bytes(&format!("{base}/{name}")).await?);
        }
        Self::load(files, &base, start).await
    }

    /// Loads a checkpoint from its files' contents.
    #[wasm_bindgen(js_name = fromBytes)]
    pub async fn from_bytes(
        model: Vec<u8>,
        config: String,
        tokenizer: String,
    ) -> Result<SamNet, JsError> {
        let files = HashMap::from([
            ("config.json", config.into_bytes()),
            ("tokenizer.json", tokenizer.into_bytes()),
            ("model.safetensors", model),
        ]);
        Self::load(files, "checkpoint", now_ms()).await
    }

    async fn load(
        files: HashMap<&'static str, Vec<u8>>,
        origin: &str,
        start: f64,
    ) -> Result<SamNet, JsError> {
        let read = |name: &str| Ok(files.get(name).cloned());
        let (snapshot, tokenizer) = Snapshot::decode(&read, origin).map_err(js_error)?;
        let options = GpuOptions::default()
            .with_backend("webgpu")
            .map_err(js_error)?;
        let gpu = Gpu::new(&options).await.map_err(js_error)?;
        let origin = format!("{origin}/model.safetensors");
        let model = Model::from_tensors(&gpu, &snapshot.config, snapshot.model, &origin)
            .map_err(js_error)?;
        Ok(SamNet {
            inner: Rc::new(Inner {
                gpu,
                model,
                tokenizer,
                config: snapshot.config,
                sampler: RefCell::new(None),
                busy: Cell::new(false),
                cancel: Cell::new(false),
                load_ms: now_ms() - start,
            }),
        })
    }

    /// The adapter sampling runs on.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> Result<JsValue, JsError> {
        let gpu = &self.inner.gpu;
        let info = AdapterInfo {
            name: gpu.info.name.clone(),
            backend: format!("{:?}", gpu.info.backend),
            device_type: format!("{:?}", gpu.info.device_type),
            driver: gpu.info.driver.clone(),
            shader_f16: gpu.features.shader_f16,
            subgroups: gpu.features.subgroups,
            timestamps: gpu.features.timestamps,
            max_buffer_size: gpu.limits.max_buffer_size,
            max_storage_buffer_binding_size: gpu.limits.max_storage_buffer_binding_size,
        };
        serde_wasm_bindgen::to_value(&info).map_err(js_error)
    }

    /// The model's size and defaults, and how long loading took.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Result<JsValue, JsError> {
        let c = &self.inner.config;
        let info = ModelInfo {
            parameters: self.inner.model.param_count(),
            vocab_size: c.model.vocab_size,
            d_model: c.model.d_model,
            n_layers: c.model.n_layers,
            max_seq_len: c.model.max_seq_len,
            sample_steps: c.diffusion.sample_steps,
            timesteps: c.diffusion.timesteps,
            kind: c.diffusion.kind.name(),
            reveal_order: c.diffusion.reveal_order.name(),
            load_ms: self.inner.load_ms,
        };
        serde_wasm_bindgen::to_value(&info).map_err(js_error)
    }

    /// Samples one sequence; see [`SampleRequest`] for the options. Resolves
    /// to `{text, tokens, steps, length, total_ms, ms_per_step, tokens_per_s}`.
    pub fn sample(&self, options: JsValue, on_step: Option<js_sys::Function>) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            if inner.busy.replace(true) {
                return Err(js_error("a sample is already running: cancel() it or wait").into());
            }
            inner.cancel.set(false);
            let result = inner.sample(options, on_step).await;
            inner.busy.set(false);
            result.map_err(JsValue::from)
        })
    }

    /// Stops the running sample after its current step.
    pub fn cancel(&self) {
        self.inner.cancel.set(true);
    }
}

impl Inner {
    fn sampler(&self, len: usize) -> Result<Rc<Sampler>, Error> {
        let mut cached = self.sampler.borrow_mut();
        if let Some(s) = cached.as_ref().filter(|s| s.len == len) {
            return Ok(Rc::clone(s));
        }
        *cached = None;
        let sampler = Rc::new(Sampler::new(&self.gpu, &self.model, 1, len)?);
        *cached = Some(Rc::clone(&sampler));
        Ok(sampler)
    }

    async fn sample(
        &self,
        options: JsValue,
        on_step: Option<js_sys::Function>,
    ) -> Result<JsValue, JsError> {
        let request: SampleRequest = serde_wasm_bindgen::from_value(options)
            .map_err(|e| js_error(format!("sample options: {e}")))?;
        let plan = request
            .plan(&self.config, &self.tokenizer)
            .map_err(js_error)?;
        let sampler = self.sampler(plan.known.tokens.len()).map_err(js_error)?;
        let schedule = NoiseSchedule::new(&self.config.diffusion);
        let start = now_ms();
        let mut last = start;
        let mut callback_error = None;
        let known_mask = plan.known.mask.clone();
        let mut report = |s: StepOutput| {
            if self.cancel.get() {
                return ControlFlow::Break(());
            }
            let Some(f) = on_step.as_ref() else {
                return ControlFlow::Continue(());
            };
            let now = now_ms();
            let step = StepReport {
                step: s.step,
                steps: plan.options.steps,
                timestep: s.timestep,
                text: self.tokenizer.decode(&s.tokens).unwrap_or_default(),
                pieces: s
                    .tokens
                    .iter()
                    .map(|&t| self.tokenizer.piece(t).to_string())
                    .collect(),
                tokens: s.tokens,
                confidence: s.confidence,
                known: known_mask.clone(),
                frozen: s.frozen,
                ms: now - last,
            };
            last = now;
            let value = match serde_wasm_bindgen::to_value(&step) {
                Ok(v) => v,
                Err(e) => {
                    callback_error = Some(js_error(e));
                    return ControlFlow::Break(());
                }
            };
            match f.call1(&JsValue::NULL, &value) {
                Ok(_) => ControlFlow::Continue(()),
                Err(e) => {
                    callback_error = Some(js_error(format!("onStep threw: {e:?}")));
                    ControlFlow::Break(())
                }
            }
        };
        let known = plan.known.mask.iter().any(|&m| m).then_some(&plan.known);
        let outcome = sampler
            .run(
                &self.gpu,
                &schedule,
                &plan.options,
                known,
                Some(&mut report),
            )
            .await;
        if let Some(e) = callback_error {
            return Err(e);
        }
        let tokens = outcome.map_err(js_error)?;
        let total_ms = now_ms() - start;
        let end = text_end(
            &tokens,
            plan.known.held_prefix(),
            self.tokenizer.separator_token(),
        );
        let filled = match &plan.hole {
            Some(hole) => Some(hole.filled(&self.tokenizer, &tokens).map_err(js_error)?),
            None => None,
        };
        let result = SampleResult {
            text: self.tokenizer.decode(&tokens[..end]).map_err(js_error)?,
            filled,
            length: tokens.len(),
            tokens_per_s: tokens.len() as f64 * plan.options.steps as f64 / (total_ms / 1000.0),
            tokens,
            steps: plan.options.steps,
            total_ms,
            ms_per_step: total_ms / plan.options.steps as f64,
        };
        serde_wasm_bindgen::to_value(&result).map_err(js_error)
    }
}

/// The names of the WGSL shader files compiled into this build.
#[wasm_bindgen(js_name = shaderNames)]
pub fn shader_names() -> Vec<String> {
    samnet_core::ops::all_shaders()
        .iter()
        .map(|s| s.name.to_string())
        .collect()
}
