use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use samnet_core::checkpoint::{self, StoreAs};
use samnet_core::config::TokenizerSource;
use samnet_core::config::{Config, DiffusionKind, Precision, TrainConfig};
use samnet_core::corpus::Document;
use samnet_core::data::{Split, TextData};
use samnet_core::eval;
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::model::Model;
use samnet_core::model::graph::OptimizerState;
use samnet_core::phase;
use samnet_core::sample::SampleOptions;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::{PendingMetrics, StepMetrics, TrainState, Trainer};
use serde_json::json;

use crate::metrics_log;
use crate::run::{Loaded, document_texts, load_checkpoint, pack, read_corpus};

#[derive(clap::Args)]
pub struct Args {
    /// A built-in configuration: tiny, phase1 (gaussian), phase1-hybrid (the
    /// shipped model's), phase1-masked, phase1-gaussian (gaussian on a 32-wide
    /// embedding table), phase2 (BPE, Gutenberg), phase3 (more Gutenberg,
    /// cosine decay), phase4 (instruction tuning), code; tiny-hybrid and
    /// tiny-masked for tests.
    #[arg(long, default_value = "phase1")]
    preset: String,
    /// A config JSON file (instead of --preset).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Training files and folders: text (Project Gutenberg headers stripped),
    /// Alpaca .json, seed-task .jsonl (default: TinyShakespeare, downloaded once and cached).
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// A tokenizer.json to train with (instead of the preset's tokenizer).
    #[arg(long, conflicts_with = "resume")]
    tokenizer: Option<PathBuf>,
    /// Start from this checkpoint's weights and architecture (the previous phase);
    /// a different tokenizer re-initialises the embedding, with a warning.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Total optimizer steps.
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    /// Sequence length.
    #[arg(long)]
    seq: Option<usize>,
    #[arg(long)]
    lr: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    /// f32, f16 (mixed precision: f16 matmul operands, f32 master weights,
    /// dynamic loss scaling; needs SHADER_F16) or auto (f16 where available).
    #[arg(long)]
    precision: Option<Precision>,
    /// Run directory: checkpoint/, metrics.jsonl (default: runs/PRESET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// Plain log lines instead of a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Log (and check for skipped steps) every N steps (default: the config's).
    #[arg(long)]
    log_every: Option<usize>,
    /// Write a checkpoint every N steps (0: only at the end; default: the config's).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Validation loss and sample quality every N steps and at the end (0:
    /// never; default: the config's). Sampling is the slow part on CPU adapters.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Fault injection, for testing: poison these steps (numbered from 1,
    /// comma-separated) with a NaN loss weight. Each must be skipped, logged
    /// and survived; see docs/reliability.md.
    #[arg(long, value_delimiter = ',')]
    inject_nan: Vec<usize>,
    /// Fault injection, for testing: destroy the GPU device after this step
    /// (as a driver reset would); the run must stop with a clear error and
    /// leave its last checkpoint intact.
    #[arg(long)]
    inject_device_loss: Option<usize>,
}

/// A run stops as diverged after this many consecutive skipped steps.
const MAX_CONSECUTIVE_SKIPS: usize = 20;

fn apply_overrides(config: &mut Config, args: &Args) {
    let t = &mut config.train;
    if let Some(v) = args.batch {
        t.batch_size = v;
    }
    if let Some(v) = args.seq {
        t.seq_len = v;
        config.model.max_seq_len = config.model.max_seq_len.max(v);
    }
    if let Some(v) = args.lr {
        t.lr = v;
    }
    if let Some(v) = args.seed {
        t.seed = v;
    }
    if let Some(v) = args.precision {
        t.precision = v;
    }
    apply_schedule_overrides(config, args);
}

/// Overrides that leave the training trajectory alone, so a resumed run may
/// change them too.
fn apply_schedule_overrides(config: &mut Config, args: &Args) {
    let t = &mut config.train;
    if let Some(v) = args.steps {
        t.steps = v;
    }
    if let Some(v) = args.log_every {
        t.log_every = v;
    }
    if let Some(v) = args.checkpoint_every {
        t.checkpoint_every = v;
    }
    if let Some(v) = args.eval_every {
        t.eval_every = v;
    }
}

struct Setup {
    trainer: Trainer,
    tokenizer: Tokenizer,
    data: TextData,
    /// The training split's text (valid-word rate and novelty).
    train_text: String,
}

/// Where the run's tokenizer comes from: --tokenizer, else the config's
/// `data.tokenizer`; settled before any data is read.
enum TokenizerPlan<'a> {
    File(&'a Path),
    Char,
    Bpe(usize),
    Inherit(&'a Loaded),
}

fn tokenizer_plan<'a>(
    args: &'a Args,
    config: &Config,
    init: Option<&'a Loaded>,
) -> anyhow::Result<TokenizerPlan<'a>> {
    if let Some(path) = &args.tokenizer {
        return Ok(TokenizerPlan::File(path));
    }
    Ok(match (config.data.tokenizer, init) {
        (TokenizerSource::Char, _) => TokenizerPlan::Char,
        (TokenizerSource::Bpe, _) => TokenizerPlan::Bpe(config.data.bpe_vocab),
        (TokenizerSource::Inherit, Some(loaded)) => TokenizerPlan::Inherit(loaded),
        (TokenizerSource::Inherit, None) => bail!(
            "this configuration continues a previous phase (data.tokenizer \"inherit\"): pass --init-from CHECKPOINT or --tokenizer FILE"
        ),
    })
}

fn build_tokenizer(plan: TokenizerPlan, documents: &[Document]) -> anyhow::Result<Tokenizer> {
    Ok(match plan {
        TokenizerPlan::File(path) => {
            let json = std::fs::read(path)
                .with_context(|| format!("{}: cannot read the tokenizer", path.display()))?;
            Tokenizer::from_json(&json, &path.display().to_string())?
        }
        TokenizerPlan::Char => Tokenizer::char_level(&document_texts(documents).concat())?,
        TokenizerPlan::Bpe(vocab) => {
            eprintln!(
                "training a {vocab}-token BPE tokenizer on the data (save one with `samnet tokenizer train` to reuse it)"
            );
            Tokenizer::train_bpe(&document_texts(documents), vocab)?
        }
        TokenizerPlan::Inherit(loaded) => loaded.tokenizer.clone(),
    })
}

/// `field old → new` for every field of two configuration sections that differs.
fn changed_fields<T: serde::Serialize>(old: &T, new: &T) -> anyhow::Result<Vec<String>> {
    let (old, new) = (serde_json::to_value(old)?, serde_json::to_value(new)?);
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        bail!("configuration sections serialise as JSON objects");
    };
    Ok(new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| {
            let was = old.get(k).map_or("absent".to_string(), |o| o.to_string());
            format!("{k} {was} → {v}")
        })
        .collect())
}

/// The training settings that decide what a window holds and which of its
/// positions are hidden, where they differ between `old` and `new`. A run
/// that continues a checkpoint changes its steps and learning rate by
/// design; a change of these makes the continued model learn another task,
/// unseen unless said (docs/pipeline.md, "Renamed locals": a code model
/// continued on the preset's spans, not its own).
fn window_settings_changed(old: &TrainConfig, new: &TrainConfig) -> anyhow::Result<Vec<String>> {
    const NAMES: [&str; 5] = [
        "infill_fraction",
        "infill_spans",
        "example_share",
        "pad_examples",
        "unscored_padding",
    ];
    // As values, in NAMES' order: serialising the whole section would drop
    // the settings that hold their defaults.
    let values = |t: &TrainConfig| -> serde_json::Result<[serde_json::Value; 5]> {
        use serde_json::to_value;
        Ok([
            to_value(t.infill_fraction)?,
            to_value(t.infill_spans)?,
            to_value(t.example_share)?,
            to_value(t.pad_examples)?,
            to_value(t.unscored_padding)?,
        ])
    };
    let (old, new) = (values(old)?, values(new)?);
    Ok(NAMES
        .iter()
        .zip(old.iter().zip(&new))
        .filter(|(_, (old, new))| old != new)
        .map(|(name, (old, new))| format!("{name} {old} → {new}"))
        .collect())
}

fn fresh(gpu: &Gpu, args: &Args) -> anyhow::Result<Setup> {
    let mut config = match &args.config {
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_json(&json, &path.display().to_string())?
        }
        None => Config::preset(&args.preset)?,
    };
    let init = args.init_from.as_deref().map(load_checkpoint).transpose()?;
    if let Some(loaded) = &init {
        // The architecture is the checkpoint's; training and diffusion settings the preset's.
        config.model = loaded.snapshot.config.model.clone();
        let changed = changed_fields(&loaded.snapshot.config.diffusion, &config.diffusion)?;
        if !changed.is_empty() {
            eprintln!(
                "warning: diffusion settings differ from {}'s: {}",
                loaded.dir.display(),
                changed.join(", ")
            );
        }
        // apply_overrides leaves these settings as they are.
        let windows = window_settings_changed(&loaded.snapshot.config.train, &config.train)?;
        if !windows.is_empty() {
            eprintln!(
                "warning: the windows are drawn unlike {}'s training: {} (its config.json as --config keeps them)",
                loaded.dir.display(),
                windows.join(", ")
            );
        }
        eprintln!(
            "starting from {} (step {}): its weights and architecture",
            loaded.dir.display(),
            loaded.snapshot.state.step
        );
    }
    apply_overrides(&mut config, args);
    let plan = tokenizer_plan(args, &config, init.as_ref())?;
    let corpus = read_corpus(&args.data)?;
    let tokenizer = build_tokenizer(plan, &corpus.documents)?;
    config.model.vocab_size = tokenizer.vocab_size();
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let data = pack(&corpus, &tokenizer, &config)?;
    let model = match &init {
        Some(loaded) => {
            let origin = loaded.dir.display().to_string();
            let (tensors, report) = phase::init_from(
                &config,
                &tokenizer,
                &loaded.snapshot.model,
                &loaded.tokenizer,
                &origin,
                config.train.seed,
            )?;
            if let Some(warning) = report.warning(&origin) {
                eprintln!("warning: {warning}");
            }
            if !report.unused.is_empty() {
                eprintln!(
                    "warning: {origin} tensors this configuration does not use: {}",
                    report.unused.join(", ")
                );
            }
            Model::from_tensors(gpu, &config, tensors, &origin)?
        }
        None => Model::new(gpu, &config, config.train.seed)?,
    };
    let optimizer = OptimizerState::new(gpu, &model)?;
    let state = TrainState::default();
    Ok(Setup {
        trainer: Trainer::new(gpu, model, optimizer, &state)?,
        train_text: tokenizer.decode(data.tokens(Split::Train))?,
        tokenizer,
        data,
    })
}

fn resumed(gpu: &Gpu, args: &Args, dir: &Path) -> anyhow::Result<Setup> {
    let loaded = load_checkpoint(dir)?;
    let mut config = loaded.snapshot.config.clone();
    // The run's trajectory is the checkpoint's: a flag that would change it
    // is refused rather than ignored.
    let t = &config.train;
    for (flag, given, kept) in [
        (
            "--batch",
            args.batch.map(|v| v.to_string()),
            t.batch_size.to_string(),
        ),
        (
            "--seq",
            args.seq.map(|v| v.to_string()),
            t.seq_len.to_string(),
        ),
        ("--lr", args.lr.map(|v| v.to_string()), t.lr.to_string()),
        (
            "--seed",
            args.seed.map(|v| v.to_string()),
            t.seed.to_string(),
        ),
        (
            "--precision",
            args.precision.map(|v| v.name().to_string()),
            t.precision.name().to_string(),
        ),
    ] {
        if let Some(given) = given.filter(|g| *g != kept) {
            bail!(
                "{flag} {given} cannot change a resumed run ({} has {kept}); drop it or start a new run with another --out",
                loaded.dir.display()
            );
        }
    }
    apply_schedule_overrides(&mut config, args);
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let corpus = read_corpus(&args.data)?;
    let data = pack(&corpus, &loaded.tokenizer, &config)?;
    let mut snapshot = loaded.snapshot;
    snapshot.config = config.clone();
    let origin = loaded.dir.display().to_string();
    let model = Model::from_tensors(
        gpu,
        &config,
        snapshot.model.clone(),
        &format!("{origin}/model.safetensors"),
    )?;
    let optimizer = snapshot.optimizer_state(gpu, &model, &origin)?;
    let trainer = Trainer::new(gpu, model, optimizer, &snapshot.state)?;
    Ok(Setup {
        trainer,
        train_text: loaded.tokenizer.decode(data.tokens(Split::Train))?,
        tokenizer: loaded.tokenizer,
        data,
    })
}

fn save(gpu: &Gpu, setup: &Setup, dir: &Path) -> anyhow::Result<()> {
    let snapshot = pollster::block_on(setup.trainer.snapshot(gpu))?;
    let files = snapshot.encode(&setup.tokenizer, StoreAs::F32)?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    checkpoint::write_dir(dir, &refs)?;
    Ok(())
}

fn evaluate(gpu: &Gpu, setup: &Setup) -> anyhow::Result<serde_json::Value> {
    let model = &setup.trainer.model;
    let cfg = &model.config;
    let val = pollster::block_on(eval::validation_loss(
        gpu,
        model,
        &setup.data,
        cfg.train.seq_len,
    ))?;
    let mean = |f: fn(&eval::ValLoss) -> f32| val.iter().map(f).sum::<f32>() / val.len() as f32;
    let train_text = &setup.train_text;
    let len = cfg.model.max_seq_len;
    let q = pollster::block_on(eval::quality(
        gpu,
        model,
        &setup.tokenizer,
        train_text,
        len,
        &SampleOptions::from_config(&cfg.diffusion),
        None,
    ))?;
    Ok(json!({
        "val": val, "val_mse_mean": mean(|v| v.mse), "val_ce_mean": mean(|v| v.ce),
        "valid_word_rate": q.valid_word_rate, "valid_long_word_rate": q.valid_long_word_rate, "diversity": q.diversity, "novelty": q.novelty,
        "sample_steps": q.steps, "sample_len": q.len, "samples": q.samples,
    }))
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let gpu = Gpu::new_blocking(options)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&args.preset));
    let ckpt_dir = out.join("checkpoint");
    let mut setup = if args.resume {
        resumed(&gpu, &args, &ckpt_dir)?
    } else {
        if checkpoint::resolve_dir(&ckpt_dir).is_ok() {
            bail!(
                "{} already holds a checkpoint; pass --resume to continue it or choose another --out",
                out.display()
            );
        }
        fresh(&gpu, &args)?
    };
    setup.trainer.inject_nan = args.inject_nan.iter().copied().collect();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let log_path = out.join("metrics.jsonl");
    let dropped = metrics_log::keep_up_to(&log_path, setup.trainer.step)?;
    if dropped > 0 {
        eprintln!(
            "{}: dropped {dropped} line(s) past step {} (written after the checkpoint by an interrupted run)",
            log_path.display(),
            setup.trainer.step
        );
    }
    let mut log: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let t = &setup.trainer.config.train;
    eprintln!(
        "training {} parameters on {} in {} for {} steps of {}×{} (from step {}); logging to {}",
        setup.trainer.model.param_count(),
        gpu.describe(),
        setup.trainer.precision(),
        t.steps,
        t.batch_size,
        t.seq_len,
        setup.trainer.step,
        log_path.display()
    );
    let mut saved_at = setup.trainer.step;
    train(&gpu, &args, &mut setup, &mut log, &ckpt_dir, &mut saved_at).map_err(|e| {
        let kept = if args.resume || saved_at > 0 {
            format!(
                "the checkpoint in {} (step {saved_at}) is intact; continue with --resume",
                ckpt_dir.display()
            )
        } else {
            "no checkpoint was written yet".to_string()
        };
        e.context(format!(
            "training stopped at step {} ({kept})",
            setup.trainer.step
        ))
    })
}

/// The training loop from the trainer's step to the configured end;
/// `saved_at` follows the step of the last checkpoint written.
fn train(
    gpu: &Gpu,
    args: &Args,
    setup: &mut Setup,
    log: &mut File,
    ckpt_dir: &Path,
    saved_at: &mut usize,
) -> anyhow::Result<()> {
    let cfg = setup.trainer.config.clone();
    let t = &cfg.train;
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(t.steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} eta {eta}").expect("template"),
    );
    bar.set_position(setup.trainer.step as u64);
    let mut logger = Logger {
        tokens_per_step: (t.batch_size * t.seq_len) as f64,
        first_step: setup.trainer.step,
        last_step: setup.trainer.step,
        started: Instant::now(),
        skips: SkipWatch::new(pollster::block_on(setup.trainer.metrics(gpu))?.skipped_steps),
        pending: VecDeque::new(),
    };
    while setup.trainer.step < t.steps {
        setup.trainer.step(gpu, &setup.data)?;
        let step = setup.trainer.step;
        if args.inject_device_loss == Some(step) {
            gpu.lose_device();
        }
        let at_end = step == t.steps;
        if step == 1 || step.is_multiple_of(t.log_every) || at_end {
            // The step's scalars come back while later steps run; an
            // evaluation needs this step's weights, so it runs now.
            let pending = setup.trainer.metrics_later(gpu);
            let eval = if t.eval_every > 0 && (step.is_multiple_of(t.eval_every) || at_end) {
                Some(evaluate(gpu, setup)?)
            } else {
                None
            };
            logger.pending.push_back((pending, eval));
        }
        logger.write_ready(gpu, &setup.trainer, log, &bar, args.no_progress, IN_FLIGHT)?;
        if t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every) && !at_end {
            // Log every step up to the checkpoint first: a resumed run keeps
            // only the lines up to its checkpoint's step.
            logger.write_ready(gpu, &setup.trainer, log, &bar, args.no_progress, 0)?;
            save(gpu, setup, ckpt_dir)?;
            *saved_at = step;
        }
        bar.set_position(step as u64);
    }
    logger.write_ready(gpu, &setup.trainer, log, &bar, args.no_progress, 0)?;
    let started = logger.started;
    bar.finish();
    save(gpu, setup, ckpt_dir)?;
    *saved_at = setup.trainer.step;
    eprintln!(
        "checkpoint written to {} ({:.1} s)",
        ckpt_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Logged steps whose metrics may still be on their way back. Past this the
/// loop waits for the oldest: unbounded, the CPU records thousands of steps
/// ahead of the GPU (each step is a few milliseconds of its time and tens
/// of the GPU's) and learns of a divergence, and the true rate, only at the
/// next checkpoint.
const IN_FLIGHT: usize = 2;

/// Writes the metrics of logged steps as they come back from the GPU (the
/// GPU checks every step for non-finite gradients without any readback; the
/// CPU learns the count here, every `log_every` steps, without stalling the
/// queue).
struct Logger {
    tokens_per_step: f64,
    /// The step the run (re)started from, and the previous record's step.
    first_step: usize,
    last_step: usize,
    started: Instant,
    skips: SkipWatch,
    pending: VecDeque<(PendingMetrics, Option<serde_json::Value>)>,
}

impl Logger {
    /// Writes every record that is ready, in order, waiting for the oldest
    /// while more than `in_flight` remain.
    fn write_ready(
        &mut self,
        gpu: &Gpu,
        trainer: &Trainer,
        log: &mut File,
        bar: &ProgressBar,
        plain: bool,
        in_flight: usize,
    ) -> anyhow::Result<()> {
        while let Some((pending, _)) = self.pending.front() {
            let wait = self.pending.len() > in_flight;
            let Some(m) = trainer.collect_metrics(gpu, pending, wait)? else {
                return Ok(());
            };
            let (_, eval) = self.pending.pop_front().expect("front exists");
            // Records come back in bursts, so the rate is the average
            // since the run (re)started rather than since the last record.
            let tokens_per_s = (m.step - self.first_step) as f64 * self.tokens_per_step
                / self.started.elapsed().as_secs_f64();
            if let Some(line) = self.skips.update(m.step - self.last_step, &m) {
                let line = format!("step {}: {line}", m.step);
                if plain {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            self.last_step = m.step;
            let mut record = serde_json::to_value(&m)?;
            record["tokens_per_s"] = json!(tokens_per_s);
            record["gpu_memory_bytes"] = json!(gpu.allocated_bytes());
            record["elapsed_s"] = json!(self.started.elapsed().as_secs_f64());
            if let Some(eval) = eval {
                record["eval"] = eval;
            }
            writeln!(log, "{record}")?;
            let terms = match trainer.config.diffusion.kind {
                DiffusionKind::Gaussian => format!(" (mse {:.4} ce {:.4})", m.mse, m.ce),
                // The loss is the ELBO's 1/t-weighted CE alone.
                DiffusionKind::Hybrid | DiffusionKind::Masked => String::new(),
            };
            let msg = format!("loss {:.4}{terms} | {tokens_per_s:.0} tok/s", m.loss);
            if plain {
                eprintln!("step {}/{} {msg}", m.step, trainer.config.train.steps);
            }
            bar.set_message(msg);
            if self.skips.streak >= MAX_CONSECUTIVE_SKIPS {
                bail!(
                    "the run diverged: at least {} consecutive steps had a non-finite loss or gradient; lower --lr",
                    self.skips.streak
                );
            }
        }
        Ok(())
    }
}

/// Skipped steps as seen at each readback: the GPU counts them every step,
/// the CPU learns the count every `log_every` steps.
struct SkipWatch {
    seen: usize,
    /// Consecutive skipped steps up to the last readback (a lower bound when
    /// a window was only partly skipped).
    streak: usize,
}

impl SkipWatch {
    fn new(seen: usize) -> Self {
        SkipWatch { seen, streak: 0 }
    }

    /// Takes the metrics read after `window` more steps; returns a line to
    /// print when steps were skipped.
    fn update(&mut self, window: usize, m: &StepMetrics) -> Option<String> {
        let new = m.skipped_steps.saturating_sub(self.seen);
        self.seen = m.skipped_steps;
        self.streak = match (new, m.skipped) {
            (n, _) if n == window && n > 0 => self.streak + n,
            (_, true) => 1,
            _ => 0,
        };
        (new > 0).then(|| {
            format!(
                "skipped {new} step(s) with a non-finite loss or gradient in the last {window} (weights unchanged); {} skipped in all",
                m.skipped_steps
            )
        })
    }
}
