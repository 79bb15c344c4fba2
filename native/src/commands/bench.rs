use std::path::PathBuf;
use std::time::Instant;

use samnet_core::config::{Config, HeadGroup, HeadKind, Precision};
use samnet_core::data::TextData;
use samnet_core::gpu::{Gpu, GpuOptions, Program};
use samnet_core::model::Model;
use samnet_core::model::graph::OptimizerState;
use samnet_core::profile::profile;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::{TrainState, Trainer};
use serde_json::json;

use super::sample::flag_error;
use crate::run::data_text;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Training step time and throughput (JSON).
    Train(TrainArgs),
    /// Matrix-product throughput of each matmul kernel version at N³ and
    /// at the model's shapes (JSON).
    Matmul(super::bench_matmul::MatmulArgs),
    /// Sampling: ms per denoising step and tokens/s per batch size (JSON).
    Sample(SampleArgs),
}

#[derive(clap::Args)]
pub struct SampleArgs {
    /// Checkpoint to sample from (default: the preset, freshly initialised;
    /// the time does not depend on the weights).
    #[arg(long)]
    ckpt: Option<PathBuf>,
    #[arg(long, default_value = "phase1")]
    preset: String,
    #[arg(long, default_value_t = 256)]
    len: usize,
    /// Sequences sampled at once (comma-separated list).
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    steps: usize,
    /// Also time every kernel of the network's forward at one step, per
    /// batch size (as `bench train --profile`).
    #[arg(long)]
    profile: bool,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[arg(long, default_value = "phase1")]
    preset: String,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    seq: Option<usize>,
    /// Training text (default: TinyShakespeare).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Also time every kernel of one step: GPU timestamps around each
    /// dispatch where the adapter has them, else each command run alone.
    #[arg(long)]
    profile: bool,
    /// Replace every layer's head mix by one kind for all heads (`full`,
    /// `linear`, `topk`, `window`), e.g. to compare the hybrid with full attention.
    #[arg(long)]
    heads: Option<String>,
    /// f32, f16 (mixed precision) or auto (default: the preset's).
    #[arg(long)]
    precision: Option<Precision>,
}

pub fn run(options: &GpuOptions, bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Train(args) => train(options, args),
        Bench::Matmul(args) => super::bench_matmul::run(options, args),
        Bench::Sample(args) => sample(options, args),
    }
}

fn sample(options: &GpuOptions, args: SampleArgs) -> anyhow::Result<()> {
    use samnet_core::sample::{SampleOverrides, Sampler};
    use samnet_core::schedule::NoiseSchedule;
    let gpu = Gpu::new_blocking(options)?;
    let (config, model) = match &args.ckpt {
        Some(dir) => {
            let loaded = crate::run::load_checkpoint(dir)?;
            let model = loaded.model(&gpu)?;
            (loaded.snapshot.config, model)
        }
        None => {
            let config = Config::preset(&args.preset)?;
            let model = Model::new(&gpu, &config, 0)?;
            (config, model)
        }
    };
    let schedule = NoiseSchedule::new(&config.diffusion);
    let sample_options = SampleOverrides {
        steps: Some(args.steps),
        ..Default::default()
    }
    .resolve(&config.diffusion)
    .map_err(flag_error)?;
    let mut results = Vec::new();
    for &batch in &args.batch {
        let sampler = Sampler::new(&gpu, &model, batch, args.len)?;
        // The first run compiles and warms up; the second is timed.
        pollster::block_on(sampler.run(&gpu, &schedule, &sample_options, None, None))?;
        let started = Instant::now();
        pollster::block_on(sampler.run(&gpu, &schedule, &sample_options, None, None))?;
        let step_ms = started.elapsed().as_secs_f64() * 1e3 / args.steps as f64;
        let mut result = json!({
            "batch": batch,
            "step_ms": step_ms,
            "tokens_per_s": (batch * args.len) as f64 / step_ms * 1e3,
            "sample_ms": step_ms * args.steps as f64,
        });
        if args.profile {
            add_profile(&mut result, &gpu, &[&sampler.graph().core])?;
        }
        results.push(result);
    }
    let report = json!({
        "bench": "sample",
        "adapter": gpu.info.name,
        "backend": format!("{:?}", gpu.info.backend),
        "len": args.len,
        "steps": args.steps,
        "clamp": config.diffusion.clamp,
        "gpu_memory_bytes": gpu.allocated_bytes(),
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn train(options: &GpuOptions, args: TrainArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new_blocking(options)?;
    let mut config = Config::preset(&args.preset)?;
    if let Some(b) = args.batch {
        config.train.batch_size = b;
    }
    if let Some(s) = args.seq {
        config.train.seq_len = s;
        config.model.max_seq_len = config.model.max_seq_len.max(s);
    }
    if let Some(kind) = &args.heads {
        let kind: HeadKind = serde_json::from_value(json!(kind)).map_err(|_| {
            anyhow::anyhow!("--heads must be linear, topk, window or full, got {kind:?}")
        })?;
        config.model.head_mix = vec![HeadGroup {
            kind,
            count: config.model.n_heads,
        }];
    }
    if let Some(p) = args.precision {
        config.train.precision = p;
    }
    config.train.steps = args.warmup + args.steps + 1;
    let (text, origin) = data_text(args.data.as_deref())?;
    let tokenizer = Tokenizer::char_level(&text)?;
    config.model.vocab_size = tokenizer.vocab_size();
    config.validate().map_err(anyhow::Error::msg)?;
    let data = TextData::new(&text, &tokenizer, config.train.seq_len, &origin)?;
    let model = Model::new(&gpu, &config, 0)?;
    let optimizer = OptimizerState::new(&gpu, &model)?;
    let mut trainer = Trainer::new(&gpu, model, optimizer, &TrainState::default())?;
    for _ in 0..args.warmup {
        trainer.step(&gpu, &data)?;
    }
    gpu.wait_idle()?;
    let started = Instant::now();
    for _ in 0..args.steps {
        trainer.step(&gpu, &data)?;
    }
    gpu.wait_idle()?;
    let step_ms = started.elapsed().as_secs_f64() * 1e3 / args.steps as f64;
    // The CPU's share of a step: recording its command buffer (never
    // submitted here), beside the GPU's step time above.
    let programs = trainer.graph.train_step();
    let started = Instant::now();
    for _ in 0..args.steps {
        drop(gpu.encode(&programs));
    }
    let encode_ms = started.elapsed().as_secs_f64() * 1e3 / args.steps as f64;
    let tokens = (config.train.batch_size * config.train.seq_len) as f64;
    let mut report = json!({
        "bench": "train",
        "preset": args.preset,
        "adapter": gpu.info.name,
        "backend": format!("{:?}", gpu.info.backend),
        "precision": trainer.precision(),
        "head_mix": config.model.head_mix,
        "batch": config.train.batch_size,
        "seq": config.train.seq_len,
        "params": trainer.model.param_count(),
        "step_ms": step_ms,
        "encode_ms": encode_ms,
        "tokens_per_s": tokens / step_ms * 1e3,
        "gpu_memory_bytes": gpu.allocated_bytes(),
        "dispatches_per_step": programs.iter().map(|p| p.commands.len()).sum::<usize>(),
    });
    if args.profile {
        add_profile(&mut report, &gpu, &programs)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Times every kernel of `programs` (`--profile`) into `report`: the clock,
/// the kernels' sum and each kernel's total.
fn add_profile(
    report: &mut serde_json::Value,
    gpu: &Gpu,
    programs: &[&Program],
) -> anyhow::Result<()> {
    let profile = pollster::block_on(profile(gpu, programs))?;
    report["profile_clock"] = serde_json::to_value(profile.clock)?;
    report["kernels_ms"] = profile
        .kernels
        .iter()
        .map(|k| k.total_ms)
        .sum::<f64>()
        .into();
    report["kernels"] = serde_json::to_value(profile.kernels)?;
    Ok(())
}
