use std::path::PathBuf;

use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::sample::{Known, SampleOptions, Sampler, StepOutput};
use samnet_core::schedule::NoiseSchedule;

use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory (model.safetensors, config.json, tokenizer.json).
    #[arg(long)]
    ckpt: PathBuf,
    /// Denoising steps (default: the config's).
    #[arg(long)]
    steps: Option<usize>,
    /// Positions to generate.
    #[arg(long, default_value_t = 256)]
    len: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Text the sample starts with (held known while denoising).
    #[arg(long)]
    prompt: Option<String>,
    /// Snap each step's estimate to the nearest embedding (default: the config's).
    #[arg(long)]
    clamp: Option<bool>,
    /// Print the decoded text at every denoising step.
    #[arg(long)]
    show_steps: bool,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let steps = args.steps.unwrap_or(cfg.diffusion.sample_steps);
    if steps == 0 || steps > cfg.diffusion.timesteps {
        anyhow::bail!(
            "--steps must be in 1..={}, got {steps}",
            cfg.diffusion.timesteps
        );
    }
    if args.len == 0 || args.len > cfg.model.max_seq_len.max(4096) {
        anyhow::bail!("--len must be in 1..=4096, got {}", args.len);
    }
    let known = match &args.prompt {
        Some(prompt) => {
            let ids = loaded.tokenizer.encode(prompt)?;
            if ids.len() > args.len {
                anyhow::bail!(
                    "the prompt is {} tokens, longer than --len {}",
                    ids.len(),
                    args.len
                );
            }
            let mut tokens = ids.clone();
            tokens.resize(args.len, 0);
            let mask = (0..args.len).map(|i| i < ids.len()).collect();
            Some(Known { tokens, mask })
        }
        None => None,
    };
    let gpu = Gpu::new_blocking(options)?;
    let model = loaded.model(&gpu)?;
    let sampler = Sampler::new(&gpu, &model, 1, args.len)?;
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    let sample_options = SampleOptions {
        steps,
        seed: args.seed,
        clamp: args.clamp.unwrap_or(cfg.diffusion.clamp),
    };
    let tokenizer = &loaded.tokenizer;
    let mut show = |s: StepOutput| {
        let text = tokenizer.decode(&s.tokens).unwrap_or_default();
        println!("--- step {} (t = {}) ---\n{text}", s.step + 1, s.timestep);
    };
    let on_step: Option<&mut dyn FnMut(StepOutput)> = if args.show_steps {
        Some(&mut show)
    } else {
        None
    };
    let tokens =
        pollster::block_on(sampler.run(&gpu, &schedule, &sample_options, known.as_ref(), on_step))?;
    if args.show_steps {
        println!("--- final ---");
    }
    println!("{}", tokenizer.decode(&tokens)?);
    Ok(())
}
