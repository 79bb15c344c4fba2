//! Shared by the commands: loading a checkpoint directory and the data a
//! run trains on.

use std::path::{Path, PathBuf};

use samnet_core::checkpoint;
use samnet_core::data::{TextData, read_text};
use samnet_core::gpu::Gpu;
use samnet_core::model::Model;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::Snapshot;

use crate::dataset;

/// A checkpoint read from disk: its contents, tokenizer and where it was.
pub struct Loaded {
    pub snapshot: Snapshot,
    pub tokenizer: Tokenizer,
    pub dir: PathBuf,
}

pub fn load_checkpoint(dir: &Path) -> anyhow::Result<Loaded> {
    let dir = checkpoint::resolve_dir(dir)?;
    let origin = dir.display().to_string();
    let read = |name: &str| -> samnet_core::Result<Option<Vec<u8>>> {
        let path = dir.join(name);
        if path.exists() {
            checkpoint::read_file(&dir, name).map(Some)
        } else {
            Ok(None)
        }
    };
    let (snapshot, tokenizer) = Snapshot::decode(&read, &origin)?;
    Ok(Loaded {
        snapshot,
        tokenizer,
        dir,
    })
}

impl Loaded {
    pub fn model(&self, gpu: &Gpu) -> anyhow::Result<Model> {
        let origin = self.dir.join("model.safetensors").display().to_string();
        Ok(Model::from_tensors(
            gpu,
            &self.snapshot.config,
            self.snapshot.model.clone(),
            &origin,
        )?)
    }
}

/// The text at `data`, or the default dataset (downloaded once and cached).
pub fn data_text(data: Option<&Path>) -> anyhow::Result<(String, String)> {
    let path = match data {
        Some(p) => p.to_path_buf(),
        None => dataset::tinyshakespeare()?,
    };
    let text = read_text(&path)?;
    Ok((text, path.display().to_string()))
}

/// Tokenized train/validation splits of `text`.
pub fn split(
    text: &str,
    tokenizer: &Tokenizer,
    seq: usize,
    origin: &str,
) -> anyhow::Result<TextData> {
    // TextData names `origin` in its errors already.
    Ok(TextData::new(text, tokenizer, seq, origin)?)
}
