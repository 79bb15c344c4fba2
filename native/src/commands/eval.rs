use std::ops::ControlFlow;
use std::path::PathBuf;

use samnet_core::eval;
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::sample::{OnStep, StepOutput};
use serde_json::json;

use samnet_core::data::Split;

use super::sample::{Denoising, check_len_flag};
use crate::progress;
use crate::run::{load_checkpoint, pack, read_corpus, with_decoding};

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
    // The validation loss reports nothing until it is done: a spinner with
    // its running time. The samples get a bar of their denoising steps.
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
    let bar = progress::denoising_bar(eval::QUALITY_SAMPLES as usize * sample_options.steps)
        .with_prefix(format!("{} samples: ", eval::QUALITY_SAMPLES));
    let mut on_each_step = |_: StepOutput| {
        bar.inc(1);
        ControlFlow::Continue(())
    };
    // A step callback makes the sampler read every step's tokens back (a GPU
    // round trip), so it is passed only when the bar is drawn.
    let on_step: OnStep = if bar.is_hidden() {
        None
    } else {
        Some(&mut on_each_step)
    };
    let q = pollster::block_on(eval::quality(
        &gpu,
        &model,
        &loaded.tokenizer,
        train_text,
        args.len,
        &sample_options,
        on_step,
    ));
    bar.finish_and_clear();
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
        "valid_word_rate": q.valid_word_rate,
        "valid_long_word_rate": q.valid_long_word_rate,
        "diversity": q.diversity,
        "novelty": q.novelty,
        "sample_steps": q.steps,
        "sample_len": q.len,
        "samples": q.samples,
    });
    let report = with_decoding(report, &sample_options, cfg.diffusion.kind);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
