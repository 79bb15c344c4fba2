//! `samnet eval-instruct`: phase 4's figure. Each held-out seed task (every
//! ninth of `alpaca_seed_tasks.jsonl`, never trained on) is prompted as in
//! training, its response denoised after the prompt, cut where the model ends
//! the example (the document separator) or starts another section (`###`),
//! and scored by ROUGE-L F1 against the task's reference output — beside the
//! baseline of copying the instruction (and input). Run it on the phase-3
//! checkpoint for the other baseline.
//!
//! `--split trained` scores 20 seed tasks that training read instead (the
//! task after each held-out one): a model that cannot answer those either
//! has not fitted its training answers, one that can has not generalised.
//!
//! `--samples N` draws N responses per task, each from its own noise, and
//! keeps the one most like the others (the highest summed ROUGE-L F1
//! against them: minimum-Bayes-risk selection, no reference used). The
//! report adds what one draw scores on average and what the best of the N
//! would score, which only the reference can pick.
//!
//! Beside it, whether the model reads its prompt at all
//! ([`crate::prompt_use`]): the reference responses scored given their own
//! prompts and given the next held-out task's.

use std::path::PathBuf;

use anyhow::Context;
use samnet_core::conditioning::{HoleEnd, Known};
use samnet_core::corpus::{self, read_data_file};
use samnet_core::data::text_from_bytes;
use samnet_core::gpu::GpuOptions;
use samnet_core::metrics::{most_agreed, rouge_l};
use serde_json::json;

use crate::prompt_use::prompt_use;
use crate::run::{EvalDenoising, Filled, Split, fill_holes, load_checkpoint, with_decoding};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// Alpaca seed tasks (JSON Lines); the held-out ninth is evaluated.
    #[arg(long)]
    tasks: PathBuf,
    /// Which seed tasks: the held-out ones, or as many that training read.
    #[arg(long, value_enum, default_value_t = Split::HeldOut)]
    split: Split,
    #[command(flatten)]
    denoising: EvalDenoising,
    /// Positions the response may take.
    #[arg(long, default_value_t = 128)]
    hole: usize,
    /// The example ends with the hole: the separator known right after it,
    /// so the response is written whole within `--hole` positions instead
    /// of being cut where the hole stops (ROUGE-L F1 counts every word past
    /// the reference's length against it).
    #[arg(long)]
    ends: bool,
    /// Responses drawn per task, the one most like the others kept; use a
    /// temperature above 0.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let origin = args.tasks.display().to_string();
    let text = text_from_bytes(read_data_file(&args.tasks)?, &origin)?;
    let tasks = match args.split {
        Split::HeldOut => corpus::held_out_tasks(&text, &origin)?,
        Split::Trained => corpus::trained_tasks(&text, &origin)?,
    };
    let sampling = args.denoising.resolve(cfg)?;
    let len = sampling.len;
    let end = HoleEnd::ending(args.ends);

    let prompts: Vec<String> = tasks
        .iter()
        .map(|task| corpus::prompt(&task.instruction, &task.input))
        .collect();
    let samples = args.samples as usize;
    let mut rows = Vec::with_capacity(tasks.len() * samples);
    for (task, prompt) in tasks.iter().zip(&prompts) {
        let row = Known::after_prompt(&loaded.tokenizer, (prompt, None), args.hole, len, end)
            .with_context(|| format!("{}: the prompt", task.source))?;
        rows.extend(std::iter::repeat_n(row, samples));
    }
    let Filled {
        gpu,
        model,
        fills,
        seconds: sampling_s,
    } = fill_holes(options, &loaded, &rows, &sampling)?;
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let references: Vec<&str> = tasks.iter().map(|t| t.output.as_str()).collect();
    let reference_nll = prompt_use(
        (&gpu, &model, &loaded.tokenizer),
        (&prompts, &references),
        (len, sampling.batch),
    )?;

    let (mut model_sum, mut copy_sum, mut words) = (0.0, 0.0, 0);
    let (mut one_draw_sum, mut best_sum) = (0.0, 0.0);
    let mut results = Vec::new();
    for (task, generated) in tasks.iter().zip(fills.chunks(samples)) {
        let candidates: Vec<&str> = generated.iter().map(|g| corpus::response_of(g)).collect();
        let scores: Vec<f64> = candidates
            .iter()
            .map(|c| rouge_l(c, &task.output))
            .collect();
        let kept = most_agreed(&candidates);
        let response = candidates[kept];
        let copied = format!("{} {}", task.instruction, task.input);
        let (score, copy) = (scores[kept], rouge_l(&copied, &task.output));
        let one_draw = scores.iter().sum::<f64>() / samples as f64;
        let best = scores.iter().copied().fold(0.0, f64::max);
        model_sum += score;
        copy_sum += copy;
        one_draw_sum += one_draw;
        best_sum += best;
        words += response.split_whitespace().count();
        let mut result = json!({
            "task": task.source,
            "instruction": task.instruction,
            "input": task.input,
            "reference": task.output,
            "response": response,
            "rouge_l": score,
            "copy_rouge_l": copy,
        });
        if samples > 1 {
            result["candidates"] = json!(candidates);
            result["candidates_rouge_l"] = json!(scores);
            result["kept"] = kept.into();
        }
        results.push(result);
    }
    let n = tasks.len() as f64;
    let mut report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "tasks": tasks.len(),
        "steps": sampling.options.steps,
        "len": len,
        "hole": args.hole,
        "hole_end": end,
        "seed": sampling.options.seed,
        "samples": args.samples,
        "selection": if samples > 1 {
            "the response with the highest summed ROUGE-L F1 against the task's other responses (minimum Bayes risk; no reference used)"
        } else {
            "the one response"
        },
        "rouge_l": model_sum / n,
        // What selection works with: a random draw's expected score, and
        // the best draw's, which only the reference can pick.
        "one_draw_rouge_l": one_draw_sum / n,
        "best_candidate_rouge_l": best_sum / n,
        "copy_instruction_rouge_l": copy_sum / n,
        // ROUGE-L F1 falls with every word past the answer: a response that
        // never ends is scored on the whole hole.
        "response_words_mean": words as f64 / n,
        "reference_nll": reference_nll,
        "sampling_s": sampling_s,
        "results": results,
    });
    report[args.split.key()] = match args.split {
        Split::HeldOut => "every ninth seed task of the file (never trained on)",
        Split::Trained => "the seed task after each held-out one (trained on)",
    }
    .into();
    let report = with_decoding(report, &sampling.options, cfg.diffusion.kind);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
