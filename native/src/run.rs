//! Shared by the commands: loading a checkpoint directory and the data a
//! run trains on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use samnet_core::checkpoint;
use samnet_core::conditioning::{CursorHole, Known};
use samnet_core::config::{Config, DiffusionKind, ExamplePadding};
use samnet_core::corpus::{Body, Corpus, Document};
use samnet_core::data::{TextData, read_text};
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::model::Model;
use samnet_core::sample::{SampleOptions, Sampler};
use samnet_core::schedule::NoiseSchedule;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::Snapshot;

use crate::commands::sample::{Denoising, check_len_flag};
use crate::dataset;

/// A checkpoint read from disk: its contents, tokenizer and where it was.
pub struct Loaded {
    pub snapshot: Snapshot,
    pub tokenizer: Tokenizer,
    pub dir: PathBuf,
}

pub fn load_checkpoint(dir: &Path) -> anyhow::Result<Loaded> {
    let dir = checkpoint::resolve_dir(dir)?;
    refuse_a_folder_of_checkpoints(&dir)?;
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

/// `--ckpt assets` (the folder that holds checkpoints, not one of them) would
/// otherwise fail with "assets/config.json: missing from the checkpoint";
/// this names the checkpoints inside instead (subfolders with a config.json).
fn refuse_a_folder_of_checkpoints(dir: &Path) -> anyhow::Result<()> {
    if dir.join("config.json").exists() {
        return Ok(());
    }
    let mut inside: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("config.json").is_file())
        .map(|path| path.display().to_string())
        .collect();
    if inside.is_empty() {
        return Ok(());
    }
    inside.sort();
    anyhow::bail!(
        "{}: a folder of checkpoints, not a checkpoint; pass one of them to --ckpt: {}",
        dir.display(),
        inside.join(", ")
    )
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

/// The corpus tokenized, shuffled and packed for `config`.
pub fn pack(corpus: &Corpus, tokenizer: &Tokenizer, config: &Config) -> anyhow::Result<TextData> {
    let origin = match corpus.files.as_slice() {
        [(path, _)] => path.display().to_string(),
        files => format!("the {} data files", files.len()),
    };
    let data = TextData::from_documents(
        &corpus.documents,
        tokenizer,
        config.train.seq_len,
        config.train.seed,
        &origin,
    )? // TextData names `origin` in its errors already.
    .with_example_padding(config.train.example_padding());
    if data.has_prompts() {
        let share = config.train.example_share;
        eprintln!(
            "instruction examples: prompts are known ({}) and outside the loss{}{}",
            if config.diffusion.holds_known_clean() {
                "held clean"
            } else {
                "noised like the rest"
            },
            if share > 0.0 {
                format!("; {:.0} % of the windows start at one", 100.0 * share)
            } else {
                String::new()
            },
            match config.train.example_padding() {
                ExamplePadding::Packed => "",
                ExamplePadding::Scored =>
                    "; a window that starts at one ends with it (the separator after it, scored)",
                ExamplePadding::Unscored =>
                    "; a window that starts at one ends with it (its separator scored, the padding after it not)",
            }
        );
    }
    Ok(data)
}

/// The documents of the given files and folders, or of the default dataset
/// when none are given; prints what was read.
pub fn read_corpus(paths: &[PathBuf]) -> anyhow::Result<Corpus> {
    let paths = if paths.is_empty() {
        vec![dataset::tinyshakespeare()?]
    } else {
        paths.to_vec()
    };
    let corpus = Corpus::read(&paths)?;
    eprintln!("data: {}", corpus.summary());
    Ok(corpus)
}

/// Every text of `documents` (an example's prompt and response as one).
pub fn document_texts(documents: &[Document]) -> Vec<String> {
    documents
        .iter()
        .map(|d| match &d.body {
            Body::Text(t) => t.clone(),
            Body::Example { prompt, response } => format!("{prompt}{response}"),
        })
        .collect()
}

/// Writes `bytes` to `path` through a temporary sibling, fsync'd and renamed,
/// so `path` is either absent, its previous version, or complete.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot move into place", path.display()))?;
    Ok(())
}

/// Which items an evaluation scores: the held-out ones (the figure), or as
/// many that training read, which tells a model that has not fitted what it
/// trained on from one that does not generalise it.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    HeldOut,
    Trained,
}

impl Split {
    /// The report's key for the items scored ("held_out" or "trained").
    pub fn key(self) -> &'static str {
        match self {
            Split::HeldOut => "held_out",
            Split::Trained => "trained",
        }
    }
}

/// How the evaluation commands denoise their batch: `sample`'s flags, a
/// seed and the window's length.
#[derive(clap::Args)]
pub struct EvalDenoising {
    #[command(flatten)]
    pub denoising: Denoising,
    /// Seed of the starting noise and every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Positions per sequence: the context around the hole and the hole
    /// (default: the model's max_seq_len).
    #[arg(long)]
    pub len: Option<usize>,
    /// Sequences denoised at once (default: all of them, or as many as the
    /// adapter's buffer limits allow); a row draws the same noise in any batch.
    #[arg(long)]
    pub batch: Option<usize>,
}

/// An evaluation's denoising, resolved: the window's length, the rows per
/// batch (`None`: as many as fit) and the sampler's options.
pub struct EvalSampling {
    pub len: usize,
    pub batch: Option<usize>,
    pub options: SampleOptions,
}

impl EvalDenoising {
    /// The window's length, the batch and the sampler's options for
    /// `config`, checked.
    pub fn resolve(&self, config: &Config) -> anyhow::Result<EvalSampling> {
        let len = self.len.unwrap_or(config.model.max_seq_len);
        check_len_flag(len, config)?;
        if self.batch == Some(0) {
            anyhow::bail!("--batch must be at least 1");
        }
        let options = SampleOptions {
            seed: self.seed,
            ..self.denoising.options(config)?
        };
        Ok(EvalSampling {
            len,
            batch: self.batch,
            options,
        })
    }
}

/// `report` (a JSON object) with the decoding it was measured with: the
/// temperature and nucleus mass, and the reveal order and guidance (masked, hybrid) or
/// the clamp, soft-x0 and eta (gaussian), so that two reports of one
/// checkpoint say how they differ.
pub fn with_decoding(
    mut report: serde_json::Value,
    options: &SampleOptions,
    kind: DiffusionKind,
) -> serde_json::Value {
    // f32 as its shortest decimal (0.8, not 0.800000011920929).
    let decimal = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    let object = report.as_object_mut().expect("a report is an object");
    object.insert("temperature".into(), decimal(options.temperature).into());
    object.insert("top_p".into(), decimal(options.top_p).into());
    if kind.is_discrete() {
        object.insert("order".into(), options.order.name().into());
        object.insert("guidance".into(), decimal(options.guidance).into());
    } else {
        object.insert("clamp".into(), options.clamp.into());
        object.insert("soft_x0".into(), options.soft_x0.into());
        object.insert("eta".into(), decimal(options.eta).into());
    }
    report
}

/// Fills every row's hole from the text around it (rows of `len` positions
/// from [`Known::around_cursor`] or [`Known::after_prompt`]), `batch` rows
/// at a time, or all of them where the adapter's buffer limits allow, else
/// as many as they do.
pub fn fill_holes(
    options: &GpuOptions,
    loaded: &Loaded,
    rows: &[(Known, CursorHole)],
    sampling: &EvalSampling,
) -> anyhow::Result<Filled> {
    let len = sampling.len;
    let cfg = &loaded.snapshot.config;
    let gpu = Gpu::new_blocking(options)?;
    let model = loaded.model(&gpu)?;
    let mut sampler = halving_to_fit(
        sampling.batch.unwrap_or(rows.len()).min(rows.len()),
        |count| Sampler::new(&gpu, &model, count, len),
    )?;
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    let (mut fills, mut seconds) = (Vec::with_capacity(rows.len()), 0.0);
    let per_batch = sampler.count;
    for (i, chunk) in rows.chunks(per_batch).enumerate() {
        if chunk.len() != sampler.count {
            sampler = Sampler::new(&gpu, &model, chunk.len(), len)?;
        }
        let mut known = Known::none(0);
        for (row, _) in chunk {
            known.tokens.extend_from_slice(&row.tokens);
            known.mask.extend_from_slice(&row.mask);
        }
        // Each row draws what one batch of every row would draw for it.
        let chunk_options = SampleOptions {
            first_sequence: (i * per_batch) as u32,
            ..sampling.options.clone()
        };
        let started = Instant::now();
        let tokens =
            pollster::block_on(sampler.run(&gpu, &schedule, &chunk_options, Some(&known), None))?;
        seconds += started.elapsed().as_secs_f64();
        for ((_, hole), row) in chunk.iter().zip(tokens.chunks(len)) {
            fills.push(hole.filled(&loaded.tokenizer, row)?);
        }
    }
    Ok(Filled {
        gpu,
        model,
        fills,
        seconds,
    })
}

/// What [`fill_holes`] leaves: the adapter and the model it sampled with
/// (for the figures an evaluation takes beside its samples), each hole's
/// text, and the seconds sampling took.
pub struct Filled {
    pub gpu: Gpu,
    pub model: Model,
    pub fills: Vec<String>,
    pub seconds: f64,
}

/// `attempt` with `count` sequences at once, or with half as many (and half
/// again) where a buffer for `count` would pass the adapter's limits.
pub fn halving_to_fit<T>(
    count: usize,
    mut attempt: impl FnMut(usize) -> samnet_core::Result<T>,
) -> anyhow::Result<T> {
    match attempt(count) {
        Err(samnet_core::Error::BufferTooLarge { .. }) if count > 1 => {
            halving_to_fit(count.div_ceil(2), attempt)
        }
        done => Ok(done?),
    }
}
