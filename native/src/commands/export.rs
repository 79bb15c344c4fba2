use std::path::PathBuf;

use samnet_core::checkpoint::{self, StoreAs};
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::Snapshot;

use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory to export.
    #[arg(long)]
    ckpt: PathBuf,
    #[command(flatten)]
    written: Written,
}

/// Where and how a model is written.
#[derive(clap::Args)]
pub struct Written {
    /// Where to write the model (model.safetensors, config.json, tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// Store the weights as f16 (half the size; for shipping and the browser).
    #[arg(long, conflicts_with = "int8")]
    f16: bool,
    /// Store every matrix as int8 with a scale per row, vectors as f16 (a
    /// quarter of the size; loaded by the CLI and the browser alike).
    #[arg(long)]
    int8: bool,
}

impl Written {
    /// Writes the weights, config and tokenizer (and the state, not the
    /// optimizer's); returns the bytes written.
    pub fn write(&self, snapshot: &Snapshot, tokenizer: &Tokenizer) -> anyhow::Result<usize> {
        let store = match (self.f16, self.int8) {
            (true, _) => StoreAs::F16,
            (_, true) => StoreAs::Int8,
            _ => StoreAs::F32,
        };
        let files = snapshot.encode(tokenizer, store)?;
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        checkpoint::write_dir(&self.out, &refs)?;
        Ok(files.iter().map(|(_, b)| b.len()).sum())
    }

    pub fn out(&self) -> &std::path::Path {
        &self.out
    }
}

/// Writes the weights, config and tokenizer of a checkpoint, without the
/// optimizer state: what `sample`, `eval` and the browser need.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut loaded = load_checkpoint(&args.ckpt)?;
    loaded.snapshot.optimizer = None;
    let bytes = args.written.write(&loaded.snapshot, &loaded.tokenizer)?;
    eprintln!(
        "exported {} ({} bytes) to {}",
        args.ckpt.display(),
        bytes,
        args.written.out().display()
    );
    Ok(())
}
