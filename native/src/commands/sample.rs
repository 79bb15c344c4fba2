use std::ops::ControlFlow;
use std::path::PathBuf;

use samnet_core::conditioning::{Known, MAX_SAMPLE_LEN, text_end};
use samnet_core::config::{Config, RevealOrder};
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::sample::{OptionError, SampleOptions, SampleOverrides, Sampler, StepOutput};
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
    /// Move each step with the expected embedding under the model's token
    /// distribution, softmax(logits / T)·Ê, instead of its raw estimate or
    /// the clamp (default: the config's).
    #[arg(long)]
    soft_x0: Option<bool>,
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
    /// random, the most confident first, left to right, or blocks (the most
    /// confident first within blocks of 32 positions counted from the first
    /// hidden one, left to right) (default: the config's).
    #[arg(long)]
    order: Option<RevealOrder>,
    /// Masked and hybrid checkpoints: classifier-free guidance w ≥ 0. Each
    /// step also runs the model with the known text (prompt, the text
    /// around a hole) hidden and decodes (1 + w)·logits − w·those logits,
    /// so the text leans on what is known; twice the work per step
    /// (default 0: one pass).
    #[arg(long)]
    guidance: Option<f32>,
}

impl Denoising {
    /// The sampler's options (seed 0): the config's with these flags applied,
    /// checked; an error names the flag.
    pub fn options(&self, cfg: &Config) -> anyhow::Result<SampleOptions> {
        SampleOverrides {
            steps: self.steps,
            seed: None,
            clamp: self.clamp,
            soft_x0: self.soft_x0,
            temperature: self.temperature,
            top_p: Some(self.top_p),
            eta: self.eta,
            order: self.order,
            guidance: self.guidance,
        }
        .resolve(&cfg.diffusion)
        .map_err(flag_error)
    }
}

/// A sampler option's error, phrased as its flag.
pub fn flag_error(e: OptionError) -> anyhow::Error {
    anyhow::anyhow!("--{} {}", e.option.replace('_', "-"), e.reason)
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
