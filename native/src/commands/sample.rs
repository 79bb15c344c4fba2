use std::ops::ControlFlow;
use std::path::PathBuf;

use samnet_core::conditioning::{Known, MAX_SAMPLE_LEN, text_end};
use samnet_core::config::{Config, RevealOrder};
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::ops::sampling::Draw;
use samnet_core::sample::{GivenOptions, SampleOptions, Sampler, StepOutput};
use samnet_core::schedule::NoiseSchedule;

use crate::progress;
use crate::run::{Loaded, load_checkpoint};

/// How a sequence is denoised; each flag given overrides the checkpoint
/// config's value.
#[derive(clap::Args)]
pub struct Denoising {
    /// Denoising steps (default: the config's).
    #[arg(long)]
    steps: Option<usize>,
    /// Snap each step's estimate to the nearest embedding (default: the config's).
    #[arg(long)]
    clamp: Option<bool>,
    /// Decoding temperature: 0 takes the most likely token, above 0 draws one
    /// (default: the config's).
    #[arg(long)]
    temperature: Option<f32>,
    /// Draw only from the smallest set of likeliest tokens holding this much
    /// probability (nucleus sampling); 1 keeps every token. Needs a
    /// temperature above 0.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Stochasticity of the denoising steps: 0 is deterministic DDIM, up to 1
    /// adds fresh noise at each step as DDPM does (default: the config's).
    #[arg(long)]
    eta: Option<f32>,
    /// Masked and hybrid checkpoints: which positions each step freezes,
    /// random or the most confident first (default: the config's).
    #[arg(long)]
    order: Option<RevealOrder>,
}

impl Denoising {
    /// The sampler's options (seed 0): the config's with these flags applied.
    /// The flags are checked here, before core sees them, so that an error
    /// names the flag (the config's own values were checked when it loaded).
    pub fn options(&self, cfg: &Config) -> anyhow::Result<SampleOptions> {
        if let Some(eta) = self.eta
            && !(0.0..=1.0).contains(&eta)
        {
            anyhow::bail!("--eta must be in [0, 1], got {eta}");
        }
        let given = GivenOptions {
            eta: self.eta.is_some(),
            clamp: self.clamp.is_some(),
            order: self.order.is_some(),
        };
        if let Some((option, reason)) = given.inapplicable(cfg.diffusion.kind) {
            anyhow::bail!("--{option} {reason}");
        }
        let defaults = SampleOptions::from_config(&cfg.diffusion);
        let temperature = self.temperature.unwrap_or(defaults.temperature);
        let draw = Draw {
            temperature,
            top_p: self.top_p,
        };
        if let Some((option, reason)) = draw.error() {
            anyhow::bail!("--{} {reason}", option.replace('_', "-"));
        }
        Ok(SampleOptions {
            steps: denoising_steps(self.steps, cfg)?,
            clamp: self.clamp.unwrap_or(defaults.clamp),
            temperature,
            top_p: self.top_p,
            eta: self.eta.unwrap_or(defaults.eta),
            order: self.order.unwrap_or(defaults.order),
            ..defaults
        })
    }
}

/// Options every conditioned or unconditioned generation shares.
#[derive(clap::Args)]
pub struct Generation {
    /// Checkpoint directory (model.safetensors, config.json, tokenizer.json).
    #[arg(long)]
    pub ckpt: PathBuf,
    /// Seed of the starting noise and of every random draw while denoising:
    /// the same seed, checkpoint and flags give the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    denoising: Denoising,
    /// Print the decoded text at every denoising step.
    #[arg(long)]
    show_steps: bool,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    generation: Generation,
    /// Positions to generate.
    #[arg(long, default_value_t = 256)]
    len: usize,
    /// Text the sample starts with (held known while denoising).
    #[arg(long)]
    prompt: Option<String>,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.generation.ckpt)?;
    check_len_flag(args.len, &loaded.snapshot.config)?;
    let known = match &args.prompt {
        Some(prompt) => Known::prompt_within(
            &loaded.tokenizer,
            prompt,
            args.len,
            loaded.snapshot.config.model.max_seq_len,
        )?,
        None => Known::none(args.len),
    };
    let tokens = generate(options, &loaded, &args.generation, &known)?;
    let end = text_end(
        &tokens,
        known.held_prefix(),
        loaded.tokenizer.separator_token(),
    );
    println!("{}", loaded.tokenizer.decode(&tokens[..end])?);
    Ok(())
}

/// The denoising steps of a run: `requested` or the config's, within 1..=T.
pub fn denoising_steps(requested: Option<usize>, cfg: &Config) -> anyhow::Result<usize> {
    let steps = requested.unwrap_or(cfg.diffusion.sample_steps);
    if steps == 0 || steps > cfg.diffusion.timesteps {
        anyhow::bail!(
            "--steps must be in 1..={}, got {steps}",
            cfg.diffusion.timesteps
        );
    }
    Ok(steps)
}

/// The longest sequence the sampler takes for this model: its max_seq_len,
/// or [`MAX_SAMPLE_LEN`] if that is more.
pub fn max_sequence_len(cfg: &Config) -> usize {
    cfg.model.max_seq_len.max(MAX_SAMPLE_LEN)
}

/// `--len` within 1..=[`max_sequence_len`].
pub fn check_len_flag(len: usize, cfg: &Config) -> anyhow::Result<()> {
    let max_len = max_sequence_len(cfg);
    if len == 0 || len > max_len {
        anyhow::bail!("--len must be 1..={max_len} positions, got {len}");
    }
    Ok(())
}

/// Denoises one sequence with `known` held fixed; returns its tokens (known
/// positions keep theirs). Prints every step's text with `--show-steps`.
/// The caller has checked the sequence's length (1..=[`max_sequence_len`]),
/// naming what set it: `--len` or an infill template.
pub fn generate(
    options: &GpuOptions,
    loaded: &Loaded,
    args: &Generation,
    known: &Known,
) -> anyhow::Result<Vec<u32>> {
    let cfg = &loaded.snapshot.config;
    let sample_options = SampleOptions {
        seed: args.seed,
        ..args.denoising.options(cfg)?
    };
    let len = known.tokens.len();
    let gpu = Gpu::new_blocking(options)?;
    eprintln!(
        "sampling {len} positions in {} steps on {}",
        sample_options.steps,
        gpu.describe()
    );
    let model = loaded.model(&gpu)?;
    let sampler = Sampler::new(&gpu, &model, 1, len)?;
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    // Both kinds take 1..=T steps.
    let steps = sample_options.steps.clamp(1, cfg.diffusion.timesteps);
    let bar = progress::denoising_bar(steps);
    let tokenizer = &loaded.tokenizer;
    let mut on_each_step = |s: StepOutput| {
        if args.show_steps {
            let text = tokenizer.decode(&s.tokens).unwrap_or_default();
            bar.suspend(|| println!("--- step {} (t = {}) ---\n{text}", s.step + 1, s.timestep));
        }
        bar.inc(1);
        ControlFlow::Continue(())
    };
    // A step callback makes the sampler read every step's tokens back (a GPU
    // round trip), so it is passed only when something shows them.
    let on_step: Option<&mut dyn FnMut(StepOutput) -> ControlFlow<()>> =
        if args.show_steps || !bar.is_hidden() {
            Some(&mut on_each_step)
        } else {
            None
        };
    let known = known.mask.iter().any(|&m| m).then_some(known);
    let tokens = pollster::block_on(sampler.run(&gpu, &schedule, &sample_options, known, on_step));
    bar.finish_and_clear();
    let tokens = tokens?;
    if args.show_steps {
        println!("--- final ---");
    }
    Ok(tokens)
}
