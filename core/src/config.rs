//! Every hyper-parameter of a run, saved as `config.json` beside each
//! checkpoint. Presets are JSON files in `assets/configs/`, compiled in.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// elu+1 feature-map attention, O(L·d²), no RoPE.
    Linear,
    /// Softmax over the k best keys per query, RoPE.
    Topk,
    /// Softmax over keys within window/2 positions, RoPE.
    Window,
    /// Softmax over all keys, RoPE.
    Full,
}

impl HeadKind {
    pub fn uses_rope(self) -> bool {
        !matches!(self, HeadKind::Linear)
    }
}

/// `count` consecutive heads of one kind; a layer's groups cover its heads in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadGroup {
    pub kind: HeadKind,
    pub count: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    Rms,
    Layer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub head_mix: Vec<HeadGroup>,
    pub topk: usize,
    pub window: usize,
    /// SwiGLU hidden width = ffn_mult · d_model.
    pub ffn_mult: usize,
    pub norm: NormKind,
    pub rope: bool,
    pub rope_base: f32,
    pub max_seq_len: usize,
    /// Width of the sinusoidal timestep features.
    pub time_embed_dim: usize,
    pub norm_eps: f32,
    pub linear_attn_eps: f32,
    /// Dropout on each residual branch's output in training mode.
    pub dropout: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// ab(t) = cos²(π/2 · (t/T + s)/(1 + s)) / cos²(π/2 · s/(1 + s)), s = 0.008 (Nichol & Dhariwal).
    Cosine,
    /// ab(t) = 1 − sqrt(t/T + 1e-4) (Diffusion-LM).
    Sqrt,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionConfig {
    /// T: timesteps are 1..=T.
    pub timesteps: usize,
    pub schedule: ScheduleKind,
    /// The diffused signal is z0 = signal_scale · x0 (x0 has unit RMS per
    /// position); the model predicts z0, and logits are taken on z0/signal_scale.
    pub signal_scale: f32,
    pub mse_weight: f32,
    pub ce_weight: f32,
    /// logits = logit_scale · (z0_pred / signal_scale) · Êᵀ (Ê the unit-RMS embedding table).
    pub logit_scale: f32,
    /// Denoising steps when sampling.
    pub sample_steps: usize,
    /// Snap each position's x0 estimate to its nearest embedding while sampling.
    pub clamp: bool,
    /// Decoding temperature while sampling: 0 takes each position's most
    /// likely token; above 0 draws it from softmax(logits / temperature).
    #[serde(default)]
    pub temperature: f32,
    /// Stochasticity of each denoising step (DDIM's eta): 0 moves x_t along
    /// the model's own noise estimate (deterministic DDIM), 1 replaces part
    /// of it with fresh noise as DDPM's ancestral sampler does.
    #[serde(default)]
    pub eta: f32,
    /// Self-conditioning (Chen et al., Analog Bits): the denoiser also reads
    /// its previous estimate of z0 through a second input projection; in
    /// training, half the sequences get the (detached) estimate of a first
    /// pass, the others zeros.
    #[serde(default)]
    pub self_condition: bool,
    /// What a training sequence's known positions (an instruction's prompt)
    /// look like to the denoiser; they are never in the loss. The gaussian
    /// kind's choice: hybrid and masked hold them clean
    /// ([`DiffusionConfig::holds_known_clean`]).
    #[serde(default)]
    pub known_positions: KnownPositions,
    /// The objective over the shared network (a config without the field is
    /// `gaussian`, the seed's).
    #[serde(default)]
    pub kind: DiffusionKind,
    /// hybrid: the largest noise std of a corrupted position (at t = 1).
    #[serde(default = "default_sigma_max")]
    pub sigma_max: f32,
    /// hybrid: how a corrupted position's noise std grows with t.
    #[serde(default)]
    pub sigma_schedule: SigmaSchedule,
    /// hybrid: which noisy positions a sampling step freezes.
    #[serde(default)]
    pub reveal_order: RevealOrder,
    /// Width of the embedding table, and so of z0, x_t and the denoiser's
    /// output (d_model when absent): a narrower table is read through the
    /// input projection (e → d) and written by the final one (d → e).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_dim: Option<usize>,
    /// gaussian: weight w of Plaid's output prior, w · log N(x_t; a_t·s·Ê_v,
    /// s_t²) added to every token v's logit, the evidence the noisy input
    /// itself holds (0: off; 1: the exact Gaussian likelihood).
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub output_prior: f32,
    /// gaussian: each sampling step's estimate of z0 is the expected
    /// embedding signal_scale · softmax(logits / T)·Ê (T = 1 at temperature
    /// 0) rather than the raw prediction or its clamp.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft_x0: bool,
}

fn is_zero_f32(x: &f32) -> bool {
    *x == 0.0
}

/// Which noisy positions a hybrid sampling step from t to s freezes to their
/// drawn tokens (a share (t − s)/t of them either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevealOrder {
    /// Each independently, with probability (t − s)/t (ancestral sampling).
    #[default]
    Random,
    /// The most confident ones (their drawn token's probability) first.
    Confident,
    /// The leftmost ones first: left to right, the same number per step, as
    /// a semi-autoregressive decoder; known text to the right of a hole
    /// still conditions every step.
    Left,
    /// The most confident first within blocks of `REVEAL_BLOCK` positions,
    /// counted from each sequence's first hidden position (an answer's
    /// start), the blocks left to right (LLaDA's semi-autoregressive
    /// decoding): a model trained to pad its answers with the separator
    /// reveals the confident padding first under `Confident`, which cuts its
    /// answer short; blocks make it write the answer before it ends it.
    Blocks,
}

/// Positions per block of `RevealOrder::Blocks` (LLaDA's block length).
pub const REVEAL_BLOCK: u32 = 32;

impl RevealOrder {
    pub fn name(self) -> &'static str {
        match self {
            RevealOrder::Random => "random",
            RevealOrder::Confident => "confident",
            RevealOrder::Left => "left",
            RevealOrder::Blocks => "blocks",
        }
    }
}

impl std::str::FromStr for RevealOrder {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            RevealOrder::Random,
            RevealOrder::Confident,
            RevealOrder::Left,
            RevealOrder::Blocks,
        ]
        .into_iter()
        .find(|o| o.name() == s)
        .ok_or_else(|| {
            format!("unknown reveal order '{s}' (expected random, confident, left or blocks)")
        })
    }
}

fn default_sigma_max() -> f32 {
    100.0
}

/// SPEC §2's objectives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffusionKind {
    /// Every position of x0's embedding noised by the cosine/sqrt schedule;
    /// MSE + CE on every position.
    #[default]
    Gaussian,
    /// CANDI-style: each position corrupted with probability t (its unit-RMS
    /// embedding plus Gaussian noise of std sigma(t), rescaled to unit RMS),
    /// the others clean anchors; CE on corrupted positions weighted 1/t (the
    /// masked-diffusion ELBO); sampling freezes each position to its drawn
    /// token with probability (t − s)/t per step.
    Hybrid,
    /// Absorbing-state diffusion (MDLM): each position replaced by a learned
    /// mask embedding with probability t; CE on masked positions weighted
    /// 1/t; sampling reveals each masked position with probability (t − s)/t
    /// per step, its token drawn from the tempered softmax.
    Masked,
}

impl DiffusionConfig {
    /// Whether known positions enter the denoiser as their clean embedding
    /// (else noised like the rest): always for the discrete kinds, which
    /// corrupt only what is not known.
    pub fn holds_known_clean(&self) -> bool {
        self.kind != DiffusionKind::Gaussian || self.known_positions == KnownPositions::Clean
    }
}

impl DiffusionKind {
    pub fn name(self) -> &'static str {
        match self {
            DiffusionKind::Gaussian => "gaussian",
            DiffusionKind::Hybrid => "hybrid",
            DiffusionKind::Masked => "masked",
        }
    }

    /// Whether positions are corrupted one by one (masked, hybrid) rather
    /// than all noised together (gaussian): the loss is CE on the corrupted
    /// positions and sampling freezes positions to drawn tokens.
    pub fn is_discrete(self) -> bool {
        self != DiffusionKind::Gaussian
    }
}

/// sigma(t) of a corrupted position under `diffusion.kind = "hybrid"`,
/// capped at `sigma_max`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigmaSchedule {
    /// CANDI's linear rank degradation: a wrong token looks nearer than the
    /// right one with probability t/2, i.e. sigma(t) = sqrt(d/2) / Φ⁻¹(1 − t/2)
    /// for unit-RMS rows of width d.
    #[default]
    Rank,
    /// sigma(t) = sigma_max · t.
    Linear,
    /// sigma(t) = sigma_max · sqrt(t): more of the range spent at high noise.
    Sqrt,
}

/// SPEC §2: known positions are replaced by their noised true x0 at every
/// step, or held clean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnownPositions {
    /// Noised like every other position (the sampler re-noises them from
    /// their true embedding at each step's timestep).
    #[default]
    Noised,
    /// Held at their clean embedding: x_t = z0 there, whatever t is.
    Clean,
}

/// Where a fresh run's tokenizer comes from (`--tokenizer FILE` overrides it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerSource {
    /// One token per distinct character of the training text.
    #[default]
    Char,
    /// Byte-level BPE of `data.bpe_vocab` tokens trained on the training text.
    Bpe,
    /// The `--init-from` checkpoint's tokenizer (a phase that continues another).
    Inherit,
}

/// How the training data is tokenized and packed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub tokenizer: TokenizerSource,
    /// Vocabulary size of a BPE tokenizer trained for the run.
    pub bpe_vocab: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            tokenizer: TokenizerSource::Char,
            bpe_vocab: 4096,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Mixed precision where the adapter has SHADER_F16, else f32.
    Auto,
    F32,
    F16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Precision::Auto, Precision::F32, Precision::F16]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("precision \"{s}\": expected f32, f16 or auto"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub lr: f32,
    /// Final learning rate as a fraction of lr (cosine decay ends there).
    pub min_lr_ratio: f32,
    /// Linear warmup over this fraction of the steps.
    pub warmup_ratio: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub adam_eps: f32,
    /// Global gradient-norm clip; 0 disables.
    pub grad_clip: f32,
    pub seed: u64,
    /// Read metrics back every this many steps (the only readback in the loop).
    pub log_every: usize,
    /// Validation loss and samples every this many steps; 0 disables.
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end); 0: only at the end.
    pub checkpoint_every: usize,
    pub precision: Precision,
    /// The share of training windows turned into infilling examples: one
    /// random span (1 to seq_len/2 positions) is denoised and scored, the
    /// rest of the window is known (clean, outside the loss), as the
    /// sampler's context is when it fills a hole. Without it a model sees a
    /// mostly clean sequence only at small t, and at the start of infilling
    /// (t near 1, most positions known) reads its context poorly.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub infill_fraction: f64,
    /// How the infilling span's length is drawn.
    #[serde(default, skip_serializing_if = "InfillSpans::is_uniform")]
    pub infill_spans: InfillSpans,
    /// The share of training windows that start at an instruction example
    /// (when the data has any), whatever share of the tokens the examples
    /// are: a few hundred examples beside a dozen books are otherwise about
    /// 1 % of what a run sees.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub example_share: f64,
    /// Each window that starts at an instruction example ends with it: the
    /// positions after its response are the document separator, scored, as
    /// LLaDA's fine-tuning pads with end-of-text. The model learns where a
    /// response ends, so a response hole longer than the answer fills with
    /// the separator (and is cut there) where otherwise the response runs on
    /// into the next document's text to the end of the hole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pad_examples: bool,
    /// With `pad_examples`, the padding after an example's closing
    /// separator is outside the loss. A short example's window is mostly
    /// padding, and scored it makes the model surest of the end anywhere
    /// after a prompt, which a most-confident-first order commits before
    /// any word (docs/pipeline.md, "Long answers only").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unscored_padding: bool,
}

impl TrainConfig {
    /// What follows an instruction example in a window that starts at it.
    pub fn example_padding(&self) -> ExamplePadding {
        match (self.pad_examples, self.unscored_padding) {
            (false, _) => ExamplePadding::Packed,
            (true, false) => ExamplePadding::Scored,
            (true, true) => ExamplePadding::Unscored,
        }
    }
}

/// What fills a window that starts at an instruction example, after the
/// example (its separator included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExamplePadding {
    /// The next document, as the stream packs it.
    #[default]
    Packed,
    /// The separator, repeated, scored: the model learns where an answer
    /// ends from its prompt alone.
    Scored,
    /// The separator, repeated, outside the loss: the end is learnt from
    /// the one separator that closes the example, and the padding, most of
    /// a short example's window, does not teach the model that an answer
    /// has ended wherever it is unsure.
    Unscored,
}

/// The length distribution of an infilling example's span, over 1 to
/// seq_len/2 positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfillSpans {
    /// Every length equally likely: most spans are paragraph-sized.
    #[default]
    Uniform,
    /// Every length scale equally likely (P(len ≤ k) ≈ ln k / ln max): as
    /// many spans of 2–4 positions as of 32–64, so a line-sized hole, the
    /// common edit in code, is trained on as often as a long one.
    LogUniform,
    /// Half the spans whole lines, from a newline token up to a later one
    /// (the number of lines log-uniform), as an editor's hole or a hidden
    /// line is; the other half `log_uniform`, so a cursor inside a line is
    /// trained on too. A window with fewer than two newlines gets a
    /// `log_uniform` span.
    Lines,
}

impl InfillSpans {
    fn is_uniform(&self) -> bool {
        *self == InfillSpans::Uniform
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: ModelConfig,
    pub diffusion: DiffusionConfig,
    pub train: TrainConfig,
    /// Absent in phase-1 configs (character level).
    #[serde(default)]
    pub data: DataConfig,
}

const PRESETS: &[(&str, &str)] = &[
    ("tiny", include_str!("../../assets/configs/tiny.json")),
    (
        "tiny-hybrid",
        include_str!("../../assets/configs/tiny-hybrid.json"),
    ),
    (
        "tiny-masked",
        include_str!("../../assets/configs/tiny-masked.json"),
    ),
    ("phase1", include_str!("../../assets/configs/phase1.json")),
    (
        "phase1-hybrid",
        include_str!("../../assets/configs/phase1-hybrid.json"),
    ),
    (
        "phase1-masked",
        include_str!("../../assets/configs/phase1-masked.json"),
    ),
    (
        "phase1-gaussian",
        include_str!("../../assets/configs/phase1-gaussian.json"),
    ),
    ("phase2", include_str!("../../assets/configs/phase2.json")),
    ("phase3", include_str!("../../assets/configs/phase3.json")),
    ("phase4", include_str!("../../assets/configs/phase4.json")),
    ("code", include_str!("../../assets/configs/code.json")),
];

impl Config {
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|(n, _)| *n).collect()
    }

    pub fn preset(name: &str) -> Result<Config> {
        let (_, json) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown preset '{name}' (expected one of: {})",
                Self::preset_names().join(", ")
            ))
        })?;
        Self::from_json(json, &format!("preset {name}"))
    }

    pub fn from_json(json: &str, origin: &str) -> Result<Config> {
        let config: Config = serde_json::from_str(json)
            .map_err(|e| Error::file(origin, format!("not a SamNet config: {e}")))?;
        config.validate().map_err(|e| Error::file(origin, e))?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    pub fn head_dim(&self) -> usize {
        self.model.d_model / self.model.n_heads
    }

    /// Width of the embedding table and the diffused vectors (`diffusion.embed_dim`).
    pub fn embed_dim(&self) -> usize {
        self.diffusion.embed_dim.unwrap_or(self.model.d_model)
    }

    pub fn ffn_hidden(&self) -> usize {
        self.model.ffn_mult * self.model.d_model
    }

    /// Checks the invariants every other module relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.model;
        let positive = [
            ("model.vocab_size", m.vocab_size),
            ("model.d_model", m.d_model),
            ("model.n_layers", m.n_layers),
            ("model.n_heads", m.n_heads),
            ("model.ffn_mult", m.ffn_mult),
            ("model.max_seq_len", m.max_seq_len),
            ("model.time_embed_dim", m.time_embed_dim),
            ("diffusion.timesteps", self.diffusion.timesteps),
            ("diffusion.sample_steps", self.diffusion.sample_steps),
            ("train.steps", self.train.steps),
            ("train.batch_size", self.train.batch_size),
            ("train.seq_len", self.train.seq_len),
            ("train.log_every", self.train.log_every),
            ("diffusion.embed_dim", self.embed_dim()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        // Far beyond any model this code trains, and small enough that no
        // size derived from them overflows or is attempted on the CPU before
        // the GPU's buffer limits are checked (a hostile config.json would
        // otherwise ask for, say, 10¹² parameter specs).
        let at_most = [
            ("model.vocab_size", m.vocab_size, 1 << 22),
            ("model.d_model", m.d_model, 1 << 16),
            ("model.n_layers", m.n_layers, 1 << 10),
            ("model.n_heads", m.n_heads, 1 << 10),
            ("model.ffn_mult", m.ffn_mult, 64),
            ("model.max_seq_len", m.max_seq_len, 1 << 20),
            ("model.time_embed_dim", m.time_embed_dim, 1 << 16),
            ("diffusion.embed_dim", self.embed_dim(), 1 << 16),
            ("model.window", m.window, 1 << 20),
            ("diffusion.timesteps", self.diffusion.timesteps, 1 << 20),
            ("train.batch_size", self.train.batch_size, 1 << 20),
        ];
        if let Some((name, value, max)) = at_most.iter().find(|(_, v, max)| v > max) {
            return Err(format!("{name} must be at most {max}, got {value}"));
        }
        if self.train.unscored_padding && !self.train.pad_examples {
            return Err("train.unscored_padding needs train.pad_examples (there is no padding to leave out)".into());
        }
        if !m.d_model.is_multiple_of(m.n_heads) {
            return Err(format!(
                "model.d_model {} is not a multiple of model.n_heads {}",
                m.d_model, m.n_heads
            ));
        }
        let head_dim = m.d_model / m.n_heads;
        // Checked: a hostile count (say usize::MAX) must not overflow the sum.
        let heads = m
            .head_mix
            .iter()
            .try_fold(0usize, |acc, g| acc.checked_add(g.count));
        if heads != Some(m.n_heads) {
            let heads = heads.map_or("more than usize::MAX".to_string(), |h| h.to_string());
            return Err(format!(
                "model.head_mix covers {heads} heads but model.n_heads is {}",
                m.n_heads
            ));
        }
        let rope_heads = m.head_mix.iter().any(|g| g.kind.uses_rope() && g.count > 0);
        if m.rope && rope_heads && !head_dim.is_multiple_of(2) {
            return Err(format!("RoPE needs an even head dimension, got {head_dim}"));
        }
        if m.head_mix
            .iter()
            .any(|g| g.kind == HeadKind::Topk && g.count > 0)
            && !(1..=64).contains(&m.topk)
        {
            return Err(format!("model.topk must be in 1..=64, got {}", m.topk));
        }
        if head_dim > 64 {
            return Err(format!(
                "head dimension {head_dim} exceeds 64 (use more heads)"
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return Err(format!(
                "model.dropout must be in [0, 1), got {}",
                m.dropout
            ));
        }
        for (name, share) in [
            ("train.infill_fraction", self.train.infill_fraction),
            ("train.example_share", self.train.example_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be in [0, 1], got {share}"));
            }
        }
        if self.train.seq_len > m.max_seq_len {
            return Err(format!(
                "train.seq_len {} exceeds model.max_seq_len {}",
                self.train.seq_len, m.max_seq_len
            ));
        }
        if self.diffusion.sample_steps > self.diffusion.timesteps {
            return Err(format!(
                "diffusion.sample_steps {} exceeds diffusion.timesteps {}",
                self.diffusion.sample_steps, self.diffusion.timesteps
            ));
        }
        let t = &self.train;
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(format!("train.lr must be positive, got {}", t.lr));
        }
        let temperature = self.diffusion.temperature;
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(format!(
                "diffusion.temperature must be ≥ 0, got {temperature}"
            ));
        }
        let eta = self.diffusion.eta;
        if !(0.0..=1.0).contains(&eta) {
            return Err(format!("diffusion.eta must be in [0, 1], got {eta}"));
        }
        self.validate_loss_weights()?;
        if self.diffusion.kind.is_discrete() {
            self.validate_discrete()?;
        }
        if !(0.0..=0.5).contains(&t.warmup_ratio) || !(0.0..=1.0).contains(&t.min_lr_ratio) {
            return Err(
                "train.warmup_ratio must be in [0, 0.5] and train.min_lr_ratio in [0, 1]".into(),
            );
        }
        if self.data.tokenizer == TokenizerSource::Bpe
            && !(257..=65_536).contains(&self.data.bpe_vocab)
        {
            return Err(format!(
                "data.bpe_vocab must be in 257..=65536 (a byte-level BPE starts from 256 byte tokens and the separator), got {}",
                self.data.bpe_vocab
            ));
        }
        if !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2) {
            return Err("train.beta1 and train.beta2 must be in [0, 1)".into());
        }
        Ok(())
    }

    /// Non-negative weights, at least one of them on; the output prior's too.
    fn validate_loss_weights(&self) -> std::result::Result<(), String> {
        let d = &self.diffusion;
        for (name, w) in [
            ("diffusion.mse_weight", d.mse_weight),
            ("diffusion.ce_weight", d.ce_weight),
            ("diffusion.output_prior", d.output_prior),
        ] {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(format!("{name} must be ≥ 0, got {w}"));
            }
        }
        if d.mse_weight == 0.0 && d.ce_weight == 0.0 {
            return Err(
                "diffusion.mse_weight and diffusion.ce_weight are both 0: nothing to train".into(),
            );
        }
        if d.clamp && d.soft_x0 {
            return Err(
                "diffusion.clamp and diffusion.soft_x0 are two estimates of x0: turn one off"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_discrete(&self) -> std::result::Result<(), String> {
        let d = &self.diffusion;
        if d.kind == DiffusionKind::Hybrid && !(d.sigma_max > 0.0 && d.sigma_max.is_finite()) {
            return Err(format!(
                "diffusion.sigma_max must be positive, got {}",
                d.sigma_max
            ));
        }
        let gaussian_only = [
            ("diffusion.self_condition", d.self_condition),
            ("diffusion.clamp", d.clamp),
            ("diffusion.eta", d.eta != 0.0),
            ("diffusion.output_prior", d.output_prior != 0.0),
            ("diffusion.soft_x0", d.soft_x0),
        ];
        if let Some((name, _)) = gaussian_only.iter().find(|(_, on)| *on) {
            return Err(format!(
                "{name} applies to diffusion.kind \"gaussian\" only; this config is \"{}\" (turn it off)",
                d.kind.name()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phases 2–4 start from the previous phase's checkpoint, so their
    /// architecture is phase 1's (SPEC §1) apart from the vocabulary, and
    /// they train the objective of the shipped phase 1, the hybrid kind's.
    #[test]
    fn phase_presets_chain() {
        let phase1 = Config::preset("phase1-hybrid").unwrap();
        let mut previous_vocab = phase1.model.vocab_size;
        for name in ["phase2", "phase3", "phase4"] {
            let c = Config::preset(name).unwrap();
            let mut model = c.model.clone();
            model.vocab_size = phase1.model.vocab_size;
            assert_eq!(model, phase1.model, "{name}'s architecture");
            assert_eq!(
                c.diffusion.signal_scale, phase1.diffusion.signal_scale,
                "{name}"
            );
            assert_eq!(c.diffusion.self_condition, phase1.diffusion.self_condition);
            let recipe = |d: &DiffusionConfig| {
                let (s, m, t) = (d.sigma_schedule, d.sigma_max, d.temperature);
                (d.kind, s, m, t, d.reveal_order)
            };
            assert_eq!(recipe(&c.diffusion), recipe(&phase1.diffusion), "{name}");
            if c.data.tokenizer == TokenizerSource::Inherit {
                assert_eq!(c.model.vocab_size, previous_vocab, "{name}");
            }
            previous_vocab = c.model.vocab_size;
        }
        let [p2, p3, p4] = ["phase2", "phase3", "phase4"].map(|n| Config::preset(n).unwrap());
        assert_eq!(p2.data.tokenizer, TokenizerSource::Bpe);
        assert_eq!(p2.data.bpe_vocab, p2.model.vocab_size);
        assert_eq!(
            p2.train.min_lr_ratio, 1.0,
            "phase 2 keeps its lr after warmup"
        );
        assert!(p3.train.min_lr_ratio < 0.1, "phase 3 decays its lr");
        assert_eq!(p4.diffusion.known_positions, KnownPositions::Clean);
        assert!(p4.train.pad_examples, "phase 4's answers end");
        let code = Config::preset("code").unwrap();
        assert!(code.train.pad_examples, "code bodies end");
        assert_eq!(code.train.example_share, 0.25);
        assert_eq!(phase1.diffusion.known_positions, KnownPositions::Noised);
        assert_eq!(phase1.data, DataConfig::default());
    }

    #[test]
    fn older_configs_without_the_new_fields_still_load() {
        let older = include_str!("../../assets/configs/phase1.json");
        let c = Config::from_json(older, "assets/configs/phase1.json").unwrap();
        assert_eq!(c.diffusion.known_positions, KnownPositions::Noised);
        assert_eq!(c.diffusion.kind, DiffusionKind::Gaussian);
        assert_eq!(c.data.tokenizer, TokenizerSource::Char);
        assert_eq!((c.train.infill_fraction, c.train.example_share), (0.0, 0.0));
        assert_eq!(c.train.infill_spans, InfillSpans::Uniform);
        assert!(!c.train.pad_examples);
        let written = c.to_json();
        assert!(
            ![
                "infill_fraction",
                "infill_spans",
                "example_share",
                "pad_examples",
                "unscored_padding"
            ]
            .iter()
            .any(|f| written.contains(f)),
            "a config without them is written as before"
        );
    }

    #[test]
    fn gaussian_levers_are_checked() {
        let mut c = Config::preset("phase1").unwrap();
        (c.diffusion.mse_weight, c.diffusion.ce_weight) = (0.0, 0.0);
        assert_eq!(
            c.validate().unwrap_err(),
            "diffusion.mse_weight and diffusion.ce_weight are both 0: nothing to train"
        );
        c.diffusion.ce_weight = 1.0;
        c.validate().expect("CE alone trains");
        c.diffusion.output_prior = -1.0;
        assert_eq!(
            c.validate().unwrap_err(),
            "diffusion.output_prior must be ≥ 0, got -1"
        );
        c.diffusion.output_prior = 0.0;
        (c.diffusion.clamp, c.diffusion.soft_x0) = (true, true);
        assert!(c.validate().unwrap_err().contains("turn one off"));
        c.diffusion.embed_dim = Some(0);
        assert_eq!(
            c.validate().unwrap_err(),
            "diffusion.embed_dim must be at least 1"
        );
        let mut h = Config::preset("phase1-hybrid").unwrap();
        h.diffusion.output_prior = 1.0;
        assert!(
            h.validate()
                .unwrap_err()
                .starts_with("diffusion.output_prior applies to diffusion.kind \"gaussian\" only"),
        );
        let written = Config::preset("phase1").unwrap().to_json();
        assert!(
            !["\"embed_dim\"", "output_prior", "soft_x0"]
                .iter()
                .any(|f| written.contains(f)),
            "a config without the levers is written as before"
        );
    }

    #[test]
    fn padding_is_left_out_of_the_loss_only_where_there_is_padding() {
        let mut c = Config::preset("phase4").unwrap();
        assert_eq!(c.train.example_padding(), ExamplePadding::Scored);
        c.train.unscored_padding = true;
        assert_eq!(c.train.example_padding(), ExamplePadding::Unscored);
        c.train.pad_examples = false;
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("train.unscored_padding needs train.pad_examples")
        );
        c.train.unscored_padding = false;
        assert_eq!(c.train.example_padding(), ExamplePadding::Packed);
    }

    #[test]
    fn infill_fraction_is_a_share_of_the_windows() {
        let mut c = Config::preset("code").unwrap();
        assert_eq!(c.train.infill_fraction, 0.5);
        c.train.infill_fraction = 1.5;
        assert_eq!(
            c.validate().unwrap_err(),
            "train.infill_fraction must be in [0, 1], got 1.5"
        );
        c.train.infill_fraction = 0.5;
        assert_eq!(c.train.infill_spans, InfillSpans::LogUniform);
        let unknown = c.to_json().replace("log_uniform", "short");
        let err = Config::from_json(&unknown, "c.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `short`"), "{err}");
        let lines = Config::from_json(&c.to_json().replace("log_uniform", "lines"), "c.json");
        assert_eq!(lines.unwrap().train.infill_spans, InfillSpans::Lines);
        c.train.example_share = -0.1;
        assert_eq!(
            c.validate().unwrap_err(),
            "train.example_share must be in [0, 1], got -0.1"
        );
    }
}
