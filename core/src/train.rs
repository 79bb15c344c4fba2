//! Training: one recorded step replayed with new inputs, metrics read back
//! every N steps, and checkpoints that resume the same run bit for bit.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, NamedTensor, StoreAs};
use crate::config::{Config, DiffusionKind, Precision};
use crate::data::{Split, TextData};
use crate::gpu::{Gpu, PendingRead};
use crate::hybrid;
use crate::model::Model;
use crate::model::graph::{Graph, GraphOptions, OptimizerState, slot};
use crate::rng::Rng;
use crate::schedule::{NoiseSchedule, learning_rate};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// What `state.json` holds beside the tensors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed optimizer steps.
    pub step: usize,
    /// Steps skipped for a non-finite gradient.
    pub skipped_steps: usize,
    /// The dynamic loss scale; 0 lets a new run start where its precision
    /// does (2^16 under mixed precision, 1 in f32).
    pub loss_scale: f32,
}

/// Scalars of the most recent step, read back from the GPU.
#[derive(Clone, Debug, Serialize)]
pub struct StepMetrics {
    pub step: usize,
    pub loss: f32,
    pub mse: f32,
    pub ce: f32,
    pub grad_norm: f32,
    pub lr: f32,
    pub loss_scale: f32,
    /// Steps skipped so far (counted on the GPU every step).
    pub skipped_steps: usize,
    /// Whether this step was skipped: its gradient norm was not finite (a NaN
    /// or ∞ anywhere in the loss or the gradients, or a loss-scaled gradient
    /// beyond f16's range under mixed precision), so no parameter or moment
    /// changed; under mixed precision the loss scale halved.
    pub skipped: bool,
}

/// The scalars of one step, on their way back from the GPU.
pub struct PendingMetrics {
    pub step: usize,
    read: PendingRead,
}

pub struct Trainer {
    pub config: Config,
    pub model: Model,
    pub optimizer: OptimizerState,
    pub graph: Graph,
    pub schedule: NoiseSchedule,
    /// Completed steps.
    pub step: usize,
    /// Fault injection (`samnet train --inject-nan`): the steps, numbered
    /// from 1, whose first loss weight is NaN. The NaN reaches the loss and
    /// every gradient, so the GPU's non-finite check must skip the step; the
    /// tests use it to prove that a run survives one.
    pub inject_nan: BTreeSet<usize>,
}

impl Trainer {
    /// How this run computes, for logs: "mixed f16/f32" or "f32".
    pub fn precision(&self) -> &'static str {
        if self.graph.options.half_operands {
            "mixed f16/f32"
        } else {
            "f32"
        }
    }

    /// A trainer over `model` with its optimizer state, continuing `state`.
    pub fn new(
        gpu: &Gpu,
        model: Model,
        optimizer: OptimizerState,
        state: &TrainState,
    ) -> Result<Trainer> {
        let config = model.config.clone();
        let t = &config.train;
        let half_operands = match t.precision {
            Precision::F32 => false,
            Precision::F16 => {
                gpu.require_f16("train.precision \"f16\"")?;
                true
            }
            Precision::Auto => gpu.features.shader_f16,
        };
        let options = GraphOptions {
            batch: t.batch_size,
            seq: t.seq_len,
            train: true,
            generate_noise: true,
            dropout: true,
            half_operands,
        };
        let graph = Graph::new(gpu, &model, options, Some(&optimizer))?;
        let mut stats = vec![0.0f32; slot::COUNT];
        // A resumed run keeps its scale; a new one starts where PyTorch's
        // GradScaler does (2^16) under mixed precision, at 1 in f32.
        stats[slot::LOSS_SCALE] = if state.loss_scale > 0.0 {
            state.loss_scale
        } else if half_operands {
            65536.0
        } else {
            1.0
        };
        stats[slot::SKIPPED] = state.skipped_steps as f32;
        gpu.write_f32(&graph.stats, &stats)?;
        Ok(Trainer {
            schedule: NoiseSchedule::new(&config.diffusion),
            config,
            model,
            optimizer,
            graph,
            step: state.step,
            inject_nan: BTreeSet::new(),
        })
    }

    /// The timesteps of step `step`: one per sequence, uniform in 1..=T,
    /// a function of (seed, step) alone.
    fn timesteps(&self, step: usize) -> Vec<u32> {
        let mut rng = Rng::new(
            self.config.train.seed
                ^ 0x7469_6D65
                ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        let t_max = self.schedule.timesteps() as u64;
        (0..self.config.train.batch_size)
            .map(|_| 1 + rng.below(t_max) as u32)
            .collect()
    }

    /// hybrid: step `step`'s timesteps and corrupted positions, a function of
    /// (seed, step) alone.
    fn corruption(&self, step: usize, weight: &[f32], known: &[f32]) -> hybrid::Corruption {
        let mut rng = Rng::new(
            self.config.train.seed
                ^ 0x4879_6272
                ^ (step as u64).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let diffusion = &self.config.diffusion;
        let batch = self.config.train.batch_size;
        let timesteps = hybrid::training_timesteps(diffusion.timesteps, batch, &mut rng);
        let width = self.config.embed_dim();
        hybrid::corrupt(diffusion, width, &timesteps, (weight, known), &[], &mut rng)
    }

    /// Records and submits one training step (no readback).
    pub fn step(&mut self, gpu: &Gpu, data: &TextData) -> Result<()> {
        let t = &self.config.train;
        let (batch, seq) = (t.batch_size, t.seq_len);
        let mut windows = data.batch_windows(
            Split::Train,
            (batch, seq),
            t.seed,
            self.step as u64,
            t.example_share,
        );
        if t.infill_fraction > 0.0 {
            let mut rng =
                Rng::new(t.seed ^ 0x1F11 ^ (self.step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let spans = (t.infill_fraction, t.infill_spans);
            windows.hold_outside_spans(seq, spans, data.line_breaks(), &mut rng);
        }
        let inject_nan = self.inject_nan.contains(&(self.step + 1));
        match self.config.diffusion.kind {
            DiffusionKind::Gaussian => {
                if inject_nan {
                    windows.weight[0] = f32::NAN;
                }
                self.graph.write_batch(
                    gpu,
                    &self.schedule,
                    &windows.tokens,
                    &self.timesteps(self.step),
                    &windows.weight,
                )?;
                self.graph.write_known(gpu, &windows.known)?;
            }
            DiffusionKind::Hybrid | DiffusionKind::Masked => {
                let mut c = self.corruption(self.step, &windows.weight, &windows.known);
                if inject_nan {
                    c.weight[0] = f32::NAN;
                }
                self.graph.write_corruption(gpu, &windows.tokens, &c)?;
            }
        }
        let seed = t.seed;
        gpu.write_u32(
            &self.graph.inputs.rng_key,
            &[(seed ^ (seed >> 32)) as u32, self.step as u32, 0],
        )?;
        let n = (self.step + 1) as i32;
        let lr = learning_rate(t, self.step);
        let step = [
            lr as f32,
            (1.0 - (t.beta1 as f64).powi(n)) as f32,
            (1.0 - (t.beta2 as f64).powi(n)) as f32,
        ];
        gpu.write_f32(&self.graph.inputs.step, &step)?;
        if self.config.diffusion.self_condition {
            let mut rng =
                Rng::new(t.seed ^ 0x5E1F ^ (self.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mask: Vec<bool> = (0..batch).map(|_| rng.uniform() < 0.5).collect();
            self.graph.write_self_condition_mask(gpu, &mask)?;
        }
        gpu.submit(&self.graph.train_step());
        self.step += 1;
        Ok(())
    }

    /// Reads the scalars of the last step (waits for the GPU).
    pub async fn metrics(&self, gpu: &Gpu) -> Result<StepMetrics> {
        let s = gpu.read_f32(&self.graph.stats).await?;
        Ok(self.metrics_of(self.step, &s))
    }

    /// Starts reading the scalars of the last step without waiting: the
    /// training loop goes on submitting steps and collects them later with
    /// [`Trainer::collect_metrics`].
    pub fn metrics_later(&self, gpu: &Gpu) -> PendingMetrics {
        PendingMetrics {
            step: self.step,
            read: gpu.read_f32_later(&self.graph.stats),
        }
    }

    /// The metrics of `pending` once the GPU has reached them (None before);
    /// with `wait`, blocks until it has.
    pub fn collect_metrics(
        &self,
        gpu: &Gpu,
        pending: &PendingMetrics,
        wait: bool,
    ) -> Result<Option<StepMetrics>> {
        Ok(gpu
            .try_read(&pending.read, wait)?
            .map(|s| self.metrics_of(pending.step, &s)))
    }

    fn metrics_of(&self, step: usize, s: &[f32]) -> StepMetrics {
        let d = &self.config.diffusion;
        StepMetrics {
            step,
            loss: d.mse_weight * s[slot::MSE] + d.ce_weight * s[slot::CE],
            mse: s[slot::MSE],
            ce: s[slot::CE],
            grad_norm: s[slot::GRAD_NORM],
            lr: learning_rate(&self.config.train, step.saturating_sub(1)) as f32,
            loss_scale: s[slot::LOSS_SCALE],
            skipped_steps: s[slot::SKIPPED] as usize,
            skipped: s[slot::SKIP] != 0.0,
        }
    }

    /// Everything a checkpoint holds, read from the GPU.
    pub async fn snapshot(&self, gpu: &Gpu) -> Result<Snapshot> {
        let metrics = self.metrics(gpu).await?;
        let mut optimizer = Vec::with_capacity(2 * self.model.specs.len());
        for (i, spec) in self.model.specs.iter().enumerate() {
            let (m, v) = (&self.optimizer.m.tensors[i], &self.optimizer.v.tensors[i]);
            for (prefix, t) in [("m", m), ("v", v)] {
                optimizer.push(NamedTensor {
                    name: format!("{prefix}.{}", spec.name),
                    shape: spec.shape.clone(),
                    data: gpu.read_f32(t).await?,
                });
            }
        }
        Ok(Snapshot {
            config: self.config.clone(),
            model: self.model.to_tensors(gpu).await?,
            optimizer: Some(optimizer),
            state: TrainState {
                step: self.step,
                skipped_steps: metrics.skipped_steps,
                loss_scale: metrics.loss_scale,
            },
        })
    }
}

/// A checkpoint's contents on the CPU.
pub struct Snapshot {
    pub config: Config,
    pub model: Vec<NamedTensor>,
    pub optimizer: Option<Vec<NamedTensor>>,
    pub state: TrainState,
}

impl Snapshot {
    /// The checkpoint's files (name, bytes); weights stored as `store`.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        store: StoreAs,
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let meta = HashMap::from([
            ("format".to_string(), "samnet".to_string()),
            ("step".to_string(), self.state.step.to_string()),
        ]);
        let mut files = vec![
            ("config.json", self.config.to_json().into_bytes()),
            ("tokenizer.json", tokenizer.to_json()?.into_bytes()),
            (
                "state.json",
                serde_json::to_vec_pretty(&self.state).expect("state serialises"),
            ),
            (
                "model.safetensors",
                checkpoint::encode(&self.model, store, meta.clone())?,
            ),
        ];
        if let Some(opt) = &self.optimizer {
            files.push((
                "optimizer.safetensors",
                checkpoint::encode(opt, StoreAs::F32, meta)?,
            ));
        }
        Ok(files)
    }

    /// Parses checkpoint files; `read(name)` returns a file's bytes, or None
    /// when it does not exist; `origin` names the checkpoint in errors.
    pub fn decode(
        read: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
        origin: &str,
    ) -> Result<(Snapshot, Tokenizer)> {
        let need = |name: &str| {
            read(name)?.ok_or_else(|| {
                Error::file(format!("{origin}/{name}"), "missing from the checkpoint")
            })
        };
        let config_bytes = need("config.json")?;
        let config = Config::from_json(
            &String::from_utf8_lossy(&config_bytes),
            &format!("{origin}/config.json"),
        )?;
        let tokenizer = Tokenizer::from_json(
            &need("tokenizer.json")?,
            &format!("{origin}/tokenizer.json"),
        )?;
        if tokenizer.vocab_size() != config.model.vocab_size {
            return Err(Error::file(
                format!("{origin}/tokenizer.json"),
                format!(
                    "has {} tokens but config.json says vocab_size {}",
                    tokenizer.vocab_size(),
                    config.model.vocab_size
                ),
            ));
        }
        let (model, _) = checkpoint::decode(
            &need("model.safetensors")?,
            &format!("{origin}/model.safetensors"),
        )?;
        let optimizer = match read("optimizer.safetensors")? {
            Some(bytes) => {
                Some(checkpoint::decode(&bytes, &format!("{origin}/optimizer.safetensors"))?.0)
            }
            None => None,
        };
        let state = match read("state.json")? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::file(
                    format!("{origin}/state.json"),
                    format!("not a training state: {e}"),
                )
            })?,
            None => TrainState::default(),
        };
        Ok((
            Snapshot {
                config,
                model,
                optimizer,
                state,
            },
            tokenizer,
        ))
    }

    /// The optimizer moments on the GPU, checked against the model.
    pub fn optimizer_state(
        &self,
        gpu: &Gpu,
        model: &Model,
        origin: &str,
    ) -> Result<OptimizerState> {
        let state = OptimizerState::new(gpu, model)?;
        let Some(tensors) = &self.optimizer else {
            return Err(Error::file(
                format!("{origin}/optimizer.safetensors"),
                "missing: this checkpoint cannot resume training",
            ));
        };
        let by_name: HashMap<&str, &NamedTensor> =
            tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        for (i, spec) in model.specs.iter().enumerate() {
            for (prefix, target) in [("m", &state.m.tensors[i]), ("v", &state.v.tensors[i])] {
                let name = format!("{prefix}.{}", spec.name);
                let t = by_name.get(name.as_str()).ok_or_else(|| {
                    Error::file(
                        format!("{origin}/optimizer.safetensors"),
                        format!("missing '{name}'"),
                    )
                })?;
                if t.shape != spec.shape {
                    return Err(Error::file(
                        format!("{origin}/optimizer.safetensors"),
                        format!(
                            "'{name}' has shape {:?}, expected {:?}",
                            t.shape, spec.shape
                        ),
                    ));
                }
                gpu.write_f32(target, &t.data)?;
            }
        }
        Ok(state)
    }
}
