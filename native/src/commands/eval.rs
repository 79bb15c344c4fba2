use std::path::PathBuf;

use samnet_core::eval;
use samnet_core::gpu::{Gpu, GpuOptions};
use serde_json::json;

use samnet_core::data::Split;

use super::sample::{Denoising, check_len_flag};
use crate::progress;
use crate::run::{load_checkpoint, pack, read_corpus};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// The files and folders the model was trained on (default: TinyShakespeare).
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Positions per sample.
    #[arg(long, default_value_t = 256)]
    len: usize,
    #[command(flatten)]
    denoising: Denoising,
    /// Only the samples and their scores (the validation loss is the slow
    /// part on CPU adapters).
    #[arg(long)]
    samples_only: bool,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    check_len_flag(args.len, cfg)?;
    let sample_options = args.denoising.options(cfg)?;
    let corpus = read_corpus(&args.data)?;
    let data = pack(&corpus, &loaded.tokenizer, cfg)?;
    let gpu = Gpu::new_blocking(options)?;
    eprintln!("evaluating on {}", gpu.describe());
    let model = loaded.model(&gpu)?;
    // core's evaluation reports nothing until it is done, so each phase gets
    // a spinner with its running time rather than a bar of steps.
    let val = if args.samples_only {
        Vec::new()
    } else {
        let spinner = progress::spinner(&format!(
            "validation loss at {} timesteps",
            eval::EVAL_TIMESTEPS.len()
        ));
        let val = pollster::block_on(eval::validation_loss(
            &gpu,
            &model,
            &data,
            cfg.train.seq_len,
        ));
        spinner.finish_and_clear();
        val?
    };
    let train_text = &loaded.tokenizer.decode(data.tokens(Split::Train))?;
    let spinner = progress::spinner(&format!(
        "{} samples of {} positions in {} steps",
        eval::QUALITY_SAMPLES,
        args.len,
        sample_options.steps
    ));
    let q = pollster::block_on(eval::quality(
        &gpu,
        &model,
        &loaded.tokenizer,
        train_text,
        args.len,
        &sample_options,
    ));
    spinner.finish_and_clear();
    let q = q?;
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
        "clamp": sample_options.clamp,
        "temperature": sample_options.temperature,
        "eta": sample_options.eta,
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
