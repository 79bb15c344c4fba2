//! `samnet eval-instruct`: phase 4's figure. Each held-out seed task (every
//! ninth of `alpaca_seed_tasks.jsonl`, never trained on) is prompted as in
//! training, its response denoised after the prompt, cut where the model ends
//! the example (the document separator) or starts another section (`###`),
//! and scored by ROUGE-L F1 against the task's reference output — beside the
//! baseline of copying the instruction (and input). Run it on the phase-3
//! checkpoint for the other baseline.
//!
//! Beside it, whether the model reads its prompt at all: the reference
//! responses' negative log-likelihood bound (nats per token: the ELBO's CE
//! term at the validation timesteps, the same corruption for both) given
//! their own prompts and given the next held-out task's prompt. A model that
//! answers the instruction scores its own lower; a model that writes the
//! same text whatever it is asked scores both alike.

use std::path::PathBuf;

use anyhow::Context;
use samnet_core::conditioning::Known;
use samnet_core::corpus::{self, read_data_file};
use samnet_core::data::{Windows, text_from_bytes};
use samnet_core::eval::windows_loss;
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::metrics::rouge_l;
use samnet_core::model::Model;
use serde_json::json;

use crate::run::{EvalDenoising, fill_holes, load_checkpoint, with_decoding};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// Alpaca seed tasks (JSON Lines); the held-out ninth is evaluated.
    #[arg(long)]
    tasks: PathBuf,
    #[command(flatten)]
    denoising: EvalDenoising,
    /// Positions the response may take.
    #[arg(long, default_value_t = 128)]
    hole: usize,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let origin = args.tasks.display().to_string();
    let text = text_from_bytes(read_data_file(&args.tasks)?, &origin)?;
    let tasks = corpus::held_out_tasks(&text, &origin)?;
    let sampling = args.denoising.resolve(cfg)?;
    let len = sampling.len;

    let prompts: Vec<String> = tasks
        .iter()
        .map(|task| corpus::prompt(&task.instruction, &task.input))
        .collect();
    let rows = tasks
        .iter()
        .zip(&prompts)
        .map(|(task, prompt)| {
            Known::after_prompt(&loaded.tokenizer, prompt, args.hole, len)
                .with_context(|| format!("{}: the prompt", task.source))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (gpu, fills, sampling_s) = fill_holes(options, &loaded, &rows, &sampling)?;
    let model = loaded.model(&gpu)?;
    let reference_nll = |shift: usize| {
        let examples: Vec<(&str, &str)> = (0..tasks.len())
            .map(|i| {
                let prompt = &prompts[(i + shift) % tasks.len()];
                (prompt.as_str(), tasks[i].output.as_str())
            })
            .collect();
        let windows = Windows::of_examples(&loaded.tokenizer, &examples, len)?;
        nll_per_token(&gpu, &model, &windows, len)
    };
    let (own, another) = (reference_nll(0)?, reference_nll(1)?);
    let mean = |nll: &[(usize, f64)]| nll.iter().map(|x| x.1).sum::<f64>() / nll.len() as f64;
    let by_t: Vec<_> = own
        .iter()
        .zip(&another)
        .map(|(o, a)| json!({"t": o.0, "own_prompt": o.1, "another_tasks_prompt": a.1}))
        .collect();

    let (mut model_sum, mut copy_sum, mut words) = (0.0, 0.0, 0);
    let mut results = Vec::new();
    for (task, generated) in tasks.iter().zip(&fills) {
        let response = corpus::response_of(generated);
        let copied = format!("{} {}", task.instruction, task.input);
        let (score, copy) = (
            rouge_l(response, &task.output),
            rouge_l(&copied, &task.output),
        );
        model_sum += score;
        copy_sum += copy;
        words += response.split_whitespace().count();
        results.push(json!({
            "task": task.source,
            "instruction": task.instruction,
            "input": task.input,
            "reference": task.output,
            "response": response,
            "rouge_l": score,
            "copy_rouge_l": copy,
        }));
    }
    let n = tasks.len() as f64;
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "tasks": tasks.len(),
        "held_out": "every ninth seed task of the file (never trained on)",
        "steps": sampling.options.steps,
        "len": len,
        "hole": args.hole,
        "seed": sampling.options.seed,
        "rouge_l": model_sum / n,
        "copy_instruction_rouge_l": copy_sum / n,
        // ROUGE-L F1 falls with every word past the answer: a response that
        // never ends is scored on the whole hole.
        "response_words_mean": words as f64 / n,
        "reference_nll": {
            "own_prompt": mean(&own),
            "another_tasks_prompt": mean(&another),
            "by_t": by_t,
        },
        "sampling_s": sampling_s,
        "results": results,
    });
    let report = with_decoding(report, &sampling.options, cfg.diffusion.kind);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The bound on each scored token's negative log-likelihood (nats), the
/// ELBO's CE term at each validation timestep, over `windows` of `len`
/// positions: as many windows at once as the adapter's buffer limits allow.
fn nll_per_token(
    gpu: &Gpu,
    model: &Model,
    windows: &Windows,
    len: usize,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let (rows, scored) = (
        windows.tokens.len() / len,
        windows.weight.iter().sum::<f32>(),
    );
    let mut batch = rows;
    'batches: loop {
        let mut sums: Vec<(usize, f64)> = Vec::new();
        for start in (0..rows).step_by(batch) {
            let span = start * len..(start + batch).min(rows) * len;
            let part = Windows {
                tokens: windows.tokens[span.clone()].to_vec(),
                weight: windows.weight[span.clone()].to_vec(),
                known: windows.known[span.clone()].to_vec(),
            };
            // The CE term is a mean over every position of the part.
            let losses = match pollster::block_on(windows_loss(gpu, model, &part, len)) {
                Err(samnet_core::Error::BufferTooLarge { .. }) if batch > 1 => {
                    batch = batch.div_ceil(2);
                    continue 'batches;
                }
                losses => losses?,
            };
            sums.resize(losses.len(), (0, 0.0));
            for (sum, loss) in sums.iter_mut().zip(&losses) {
                *sum = (loss.t, sum.1 + loss.ce as f64 * span.len() as f64);
            }
        }
        return Ok(sums
            .into_iter()
            .map(|(t, sum)| (t, sum / scored.max(1.0) as f64))
            .collect());
    }
}
