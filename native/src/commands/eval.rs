use std::path::PathBuf;

use samnet_core::eval;
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::sample::SampleOptions;
use serde_json::json;

use samnet_core::data::Split;

use crate::run::{load_checkpoint, pack, read_corpus};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// The files and folders the model was trained on (default: TinyShakespeare).
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Denoising steps for the samples (default: the config's).
    #[arg(long)]
    steps: Option<usize>,
    /// Positions per sample.
    #[arg(long, default_value_t = 256)]
    len: usize,
    /// Snap each step's estimate to the nearest embedding (default: the config's).
    #[arg(long)]
    clamp: Option<bool>,
    /// Decoding temperature (default: the config's).
    #[arg(long)]
    temperature: Option<f32>,
    /// Stochasticity of the denoising steps, 0 (DDIM) to 1 (DDPM-like) (default: the config's).
    #[arg(long)]
    eta: Option<f32>,
    /// Only the samples and their scores (the validation loss is the slow
    /// part on CPU adapters).
    #[arg(long)]
    samples_only: bool,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let corpus = read_corpus(&args.data)?;
    let data = pack(&corpus, &loaded.tokenizer, cfg)?;
    let gpu = Gpu::new_blocking(options)?;
    let model = loaded.model(&gpu)?;
    let val = if args.samples_only {
        Vec::new()
    } else {
        pollster::block_on(eval::validation_loss(
            &gpu,
            &model,
            &data,
            cfg.train.seq_len,
        ))?
    };
    let mut options = SampleOptions::from_config(&cfg.diffusion);
    options.steps = args.steps.unwrap_or(options.steps);
    options.clamp = args.clamp.unwrap_or(options.clamp);
    options.temperature = args.temperature.unwrap_or(options.temperature);
    options.eta = args.eta.unwrap_or(options.eta);
    let train_text = &loaded.tokenizer.decode(data.tokens(Split::Train))?;
    let q = pollster::block_on(eval::quality(
        &gpu,
        &model,
        &loaded.tokenizer,
        train_text,
        args.len,
        &options,
    ))?;
    let mean = |f: fn(&eval::ValLoss) -> f32| {
        (!val.is_empty()).then(|| val.iter().map(f).sum::<f32>() / val.len() as f32)
    };
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "step": loaded.snapshot.state.step,
        "adapter": gpu.info.name,
        "val": val,
        "val_mse_mean": mean(|v| v.mse),
        "val_ce_mean": mean(|v| v.ce),
        "clamp": options.clamp,
        "temperature": options.temperature,
        "eta": options.eta,
        "valid_word_rate": q.valid_word_rate,
        "valid_long_word_rate": q.valid_long_word_rate,
        "diversity": q.diversity,
        "novelty": q.novelty,
        "sample_steps": q.steps,
        "sample_len": q.len,
        "samples": q.samples,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
