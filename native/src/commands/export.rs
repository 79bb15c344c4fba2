use std::path::PathBuf;

use samnet_core::checkpoint::{self, StoreAs};

use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory to export.
    #[arg(long)]
    ckpt: PathBuf,
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

/// Writes the weights, config and tokenizer of a checkpoint, without the
/// optimizer state: what `sample`, `eval` and the browser need.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut loaded = load_checkpoint(&args.ckpt)?;
    loaded.snapshot.optimizer = None;
    let store = match (args.f16, args.int8) {
        (true, _) => StoreAs::F16,
        (_, true) => StoreAs::Int8,
        _ => StoreAs::F32,
    };
    let files = loaded.snapshot.encode(&loaded.tokenizer, store)?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    checkpoint::write_dir(&args.out, &refs)?;
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "exported {} ({} bytes) to {}",
        args.ckpt.display(),
        bytes,
        args.out.display()
    );
    Ok(())
}
