//! `samnet eval-infill`: the infilling figure on prose. Sentences from the
//! validation part of each text (the last tenth of its tokens, which
//! training never sees), each with a hole of `--hole-chars` characters
//! starting at a word near its middle, are filled from both sides (the hole
//! as long as the hidden text, in tokens where it stands); the score is the share of hidden
//! whole words put back exactly, in place.

use std::path::PathBuf;

use anyhow::Context;
use samnet_core::conditioning::{HoleEnd, Known};
use samnet_core::corpus::Body;
use samnet_core::gpu::GpuOptions;
use samnet_core::sentences::{self, Hole};
use serde_json::json;

use crate::run::{EvalDenoising, Filled, fill_holes, load_checkpoint, read_corpus, with_decoding};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// The files and folders the model was trained on (default: TinyShakespeare).
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Sentences to fill, evenly spaced through the validation text.
    #[arg(long, default_value_t = 20)]
    sentences: usize,
    /// Characters hidden in each.
    #[arg(long, default_value_t = 20)]
    hole_chars: usize,
    #[command(flatten)]
    denoising: EvalDenoising,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let (cfg, tokenizer) = (&loaded.snapshot.config, &loaded.tokenizer);
    let sampling = args.denoising.resolve(cfg)?;
    let len = sampling.len;
    if args.sentences == 0 || args.hole_chars == 0 {
        anyhow::bail!("--sentences and --hole-chars must be at least 1");
    }
    let corpus = read_corpus(&args.data)?;
    let mut candidates = Vec::new();
    for doc in &corpus.documents {
        if let Body::Text(text) = &doc.body {
            // The split of data::TextData: the last tenth of the tokens.
            let tokens = tokenizer.encode(text).context(doc.source.clone())?;
            let held_out = tokenizer.decode(&tokens[tokens.len() * 9 / 10..])?;
            candidates.extend(sentences::candidates(&held_out));
        }
    }
    let picked = sentences::pick(&candidates, args.sentences);
    if picked.is_empty() {
        anyhow::bail!(
            "the validation part of the data holds no sentence of 60–200 characters and 8 words or more"
        );
    }

    let mut rows = Vec::new();
    let mut holes = Vec::new();
    for sentence in &picked {
        let hole = Hole::in_sentence(sentence, args.hole_chars);
        let around = (
            hole.before.as_str(),
            hole.hidden.as_str(),
            hole.after.as_str(),
        );
        let row = Known::around_hidden(tokenizer, around, HoleEnd::Open, None, len)
            .with_context(|| format!("the sentence {sentence:?}"))?;
        rows.push(row);
        holes.push(hole);
    }
    let Filled {
        gpu,
        fills,
        seconds: sampling_s,
        ..
    } = fill_holes(options, &loaded, &rows, &sampling)?;

    let (mut right, mut total) = (0, 0);
    let mut results = Vec::new();
    for (hole, filled) in holes.iter().zip(&fills) {
        let (r, t) = hole.words_recovered(filled);
        (right, total) = (right + r, total + t);
        results.push(json!({
            "before": hole.before,
            "hidden": hole.hidden,
            "filled": filled,
            "after": hole.after,
            "words": t,
            "words_right": r,
        }));
    }
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "sentences": holes.len(),
        "held_out": "sentences of the last tenth of each text's tokens (the validation split)",
        "hole_chars": args.hole_chars,
        "steps": sampling.options.steps,
        "len": len,
        "seed": sampling.options.seed,
        "hidden_words": total,
        "exact_word_accuracy": right as f64 / total.max(1) as f64,
        "sampling_s": sampling_s,
        "results": results,
    });
    let report = with_decoding(report, &sampling.options, cfg.diffusion.kind);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
