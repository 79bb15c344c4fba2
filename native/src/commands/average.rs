use std::path::PathBuf;

use samnet_core::average::{Ingredient, average};

use crate::commands::export::Written;
use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint to average (two or more); the first gives the config,
    /// state and tokenizer.
    #[arg(long, required = true)]
    ckpt: Vec<PathBuf>,
    /// Each checkpoint's weight, in --ckpt order, comma-separated (scaled to
    /// sum to 1); equal weights when absent.
    #[arg(long, value_delimiter = ',')]
    weights: Option<Vec<f64>>,
    #[command(flatten)]
    written: Written,
}

/// Writes the weighted mean of checkpoints of one architecture.
pub fn run(args: Args) -> anyhow::Result<()> {
    let weights = args.weights.unwrap_or_else(|| vec![1.0; args.ckpt.len()]);
    if weights.len() != args.ckpt.len() {
        anyhow::bail!(
            "--weights gives {} weights for {} checkpoints; give one per --ckpt",
            weights.len(),
            args.ckpt.len()
        );
    }
    let loaded = args
        .ckpt
        .iter()
        .map(|dir| load_checkpoint(dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let origins: Vec<String> = loaded.iter().map(|l| l.dir.display().to_string()).collect();
    let ingredients: Vec<Ingredient> = loaded
        .iter()
        .zip(&origins)
        .zip(&weights)
        .map(|((l, origin), &weight)| Ingredient {
            origin,
            snapshot: &l.snapshot,
            tokenizer: &l.tokenizer,
            weight,
        })
        .collect();
    let mean = average(&ingredients)?;
    let bytes = args.written.write(&mean, &loaded[0].tokenizer)?;
    let total: f64 = weights.iter().sum();
    let parts: Vec<String> = origins
        .iter()
        .zip(&weights)
        .map(|(o, w)| format!("{o} × {:.3}", w / total))
        .collect();
    eprintln!(
        "averaged {} ({bytes} bytes) to {}",
        parts.join(" + "),
        args.written.out().display()
    );
    Ok(())
}
