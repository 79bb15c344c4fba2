//! SamNet's forward, backward and optimizer step as recorded GPU work, built
//! once per (batch, sequence length) with every buffer allocated up front,
//! then replayed: a training step is one command buffer with no readback.
//!
//! Forward (rows = B·L; `Ê` the unit-RMS embedding table):
//!   Ê = rmsnorm(E);  z0 = signal_scale · Ê\[w\];  x_t = a_t z0 + s_t eps
//!     (x_t = z0 at known positions when they are held clean)
//!   c = fc2(silu(fc1(sinusoid(t))));  cs = silu(c);  h = input(x_t)
//!   per block: [sh1 sc1 g1 sh2 sc2 g2] = adaln(cs)
//!     h += g1 · out(attn(norm(h)(1 + sc1) + sh1))
//!     h += g2 · w2(swiglu(w13(norm(h)(1 + sc2) + sh2)))
//!   final: [sh sc] = adaln(cs);  z0_pred = out(norm(h)(1 + sc) + sh)
//!   logits = (logit_scale / signal_scale) · z0_pred · Êᵀ
//!     (+ β_t · x_t · Êᵀ with `diffusion.output_prior`, see `output`)
//!   loss = mse_weight · mse(z0_pred, z0) + ce_weight · ce(logits, w),
//!     both means over positions weighted by `inputs.weight` (0 excludes a
//!     position, e.g. an instruction's prompt)
//! `diffusion.kind = "hybrid"` changes three layers (see `hybrid`): the
//! noising (z0 = `Ê[w]`; corrupted positions a z0 + s eps, clean ones z0),
//! the readout (α = logit_scale) and the loss (1/t-weighted CE over B·L, no
//! MSE); the timesteps are t·T. `"masked"` is the same with every corrupted
//! position's input the learned mask row m̂ = rmsnorm(M).
//! The embedding is normalised row-wise (RMS) rather than left free: under
//! the MSE term free embeddings shrink or collapse, which makes a fixed noise
//! schedule meaningless; unit-RMS rows keep x0's per-coordinate variance at
//! exactly 1 (then scaled by signal_scale) for the whole run.
//! Its width e (`diffusion.embed_dim`, d_model unless set) is that of z0,
//! x_t and z0_pred; the input and final projections map it to and from d.
//! Gradients flow everywhere, the embedding included (through z0 as target,
//! through x_t and through the logits).
//!
//! Each layer is a struct holding its saved activations with a `forward`
//! and a `backward` that record its dispatches (llm.c's shape): `input`
//! (embedding table, noising, timestep MLP, input projection), `block`,
//! `output` (final layer, tied logits), `loss` and `optimizer`.
//! `Graph::new` reads top to bottom as the model: the forward in order,
//! then the backward in reverse.

mod block;
mod input;
mod loss;
mod optimizer;
mod output;
mod recorder;

use super::Model;
use crate::Result;
use crate::gpu::{DType, Gpu, Packed, Program, Tensor};
use crate::hybrid::Corruption;
use crate::ops::loss::LossSlots;
use crate::ops::optim::OptimSlots;
use crate::ops::random::KEY_WORDS;
use crate::schedule::NoiseSchedule;
use block::Block;
use input::{EmbedTable, InputLayer, Noising, TimeMlp};
use loss::{Loss, LossOperands};
use output::{FinalLayer, Logits};
use recorder::{Backprop, Recorder};

/// Slots of the step's scalars in [`Graph::stats`].
pub mod slot {
    pub const WEIGHT_SUM: usize = 0;
    pub const LOSS_SCALE: usize = 1;
    pub const MSE_SUM: usize = 2;
    pub const MSE: usize = 3;
    pub const CE_SUM: usize = 4;
    pub const CE: usize = 5;
    pub const GRAD_SUMSQ: usize = 6;
    pub const GRAD_NORM: usize = 7;
    pub const CLIP_FACTOR: usize = 8;
    pub const SKIP: usize = 9;
    pub const SKIPPED: usize = 10;
    pub const CLEAN_STEPS: usize = 11;
    pub const COUNT: usize = 12;
}

const LOSS_SLOTS: LossSlots = LossSlots {
    weight_sum: slot::WEIGHT_SUM,
    loss_scale: slot::LOSS_SCALE,
};
const OPTIM_SLOTS: OptimSlots = OptimSlots {
    sumsq: slot::GRAD_SUMSQ,
    norm: slot::GRAD_NORM,
    factor: slot::CLIP_FACTOR,
    skip: slot::SKIP,
    skipped: slot::SKIPPED,
    loss_scale: slot::LOSS_SCALE,
    clean_steps: slot::CLEAN_STEPS,
};

/// Mixed precision: the loss scale doubles after this many clean steps (as
/// PyTorch's GradScaler), up to 65,536, and halves on each overflow.
pub const LOSS_SCALE_GROWTH_INTERVAL: u32 = 2000;

/// RNG streams: noise, then two dropout sites per block.
const NOISE_STREAM: u32 = 1;
pub(crate) fn dropout_stream(layer: usize, site: usize) -> u32 {
    2 + 2 * layer as u32 + site as u32
}

#[derive(Clone, Copy, Debug)]
pub struct GraphOptions {
    pub batch: usize,
    pub seq: usize,
    /// Record the backward and the optimizer; otherwise forward only.
    pub train: bool,
    /// Draw eps on the GPU from `rng_key` (else the caller writes `inputs.noise`).
    pub generate_noise: bool,
    /// Apply the config's dropout (training mode).
    pub dropout: bool,
    /// Mixed precision (needs SHADER_F16): every matmul rounds its operands
    /// to f16 and reads weights from half copies made at the start of each
    /// forward; products, sums, master weights and optimizer stay f32, and
    /// the loss scale adapts (halved on overflow, grown after clean steps).
    pub half_operands: bool,
}

/// What the CPU writes before a submission (all small).
pub struct Inputs {
    /// (B·L) u32 token ids.
    pub tokens: Tensor,
    /// (B) u32 timesteps.
    pub timesteps: Tensor,
    /// (B, 4): a_t, s_t (and a_t', s_t' for sampling).
    pub coef: Tensor,
    /// (B·L) per-position loss weight.
    pub weight: Tensor,
    /// (B·L) 1 where a position is known (held clean under
    /// `diffusion.known_positions = "clean"`; ignored otherwise), else 0;
    /// hybrid: 1 where a position is clean (an anchor or known).
    pub known: Tensor,
    /// (3) u32: seed, step and the first sequence's index in the run
    /// ([`crate::ops::random::KEY_WORDS`]), keying the GPU's random numbers.
    pub rng_key: Tensor,
    /// (3): lr, 1 − β1^t, 1 − β2^t.
    pub step: Tensor,
    /// (B·L, e) eps, drawn on the GPU unless the caller provides it.
    pub noise: Tensor,
    /// (B, 4): per sequence, whether the self-conditioning pass feeds its
    /// estimate (first column 1) or zeros (0).
    pub sc_mask: Tensor,
    /// (B, 4) gaussian with an output prior: (α, β_b, ·, ·), the logits' readout
    /// u = α·z0_pred + β_b·x_t (see [`Graph::write_readout`]).
    pub readout: Option<Tensor>,
}

impl Inputs {
    fn new(r: &Recorder) -> Result<Self> {
        let (gpu, rows, b) = (r.gpu, r.rows, r.options.batch);
        Ok(Inputs {
            tokens: gpu.zeros("tokens", &[rows], DType::U32)?,
            timesteps: gpu.zeros("timesteps", &[b], DType::U32)?,
            coef: r.zeros("coef", &[b, 4])?,
            weight: r.zeros("weight", &[rows])?,
            known: r.zeros("known", &[rows])?,
            rng_key: gpu.zeros("rng_key", &[KEY_WORDS], DType::U32)?,
            step: r.zeros("step", &[3])?,
            noise: r.zeros("noise", &[rows, r.e])?,
            sc_mask: r.zeros("sc_mask", &[b, 4])?,
            readout: r.zeros_if(r.readout.is_some(), "readout", &[b, 4])?,
        })
    }
}

/// AdamW moments, one pair per parameter, packed like the parameters; kept
/// across graph rebuilds and saved in checkpoints.
pub struct OptimizerState {
    pub m: Packed,
    pub v: Packed,
}

impl OptimizerState {
    pub fn new(gpu: &Gpu, model: &Model) -> Result<Self> {
        Ok(OptimizerState {
            m: model.packed_like(gpu, "m")?,
            v: model.packed_like(gpu, "v")?,
        })
    }
}

/// The recorded passes and every buffer they use.
pub struct Graph {
    pub options: GraphOptions,
    /// gaussian with an output prior: what `inputs.readout` is made of.
    readout: Option<Readout>,
    pub inputs: Inputs,
    /// Scalars of the step (see [`slot`]); read back every N steps.
    pub stats: Tensor,
    /// (B·L, e) the noised input of the denoiser; the sampler writes it directly.
    pub x_t: Tensor,
    /// The residual stream before each block and after the last, (B·L, d) each.
    pub residual: Vec<Tensor>,
    /// (B·L, e) the self-conditioning input: a previous estimate of z0 (or zeros).
    pub sc: Tensor,
    /// (B·L, e) the denoiser's estimate of z0 = signal_scale · x0.
    pub z0_pred: Tensor,
    /// (B·L, V) logits against the tied, normalised embeddings.
    pub logits: Tensor,
    /// (V, e) the unit-RMS embedding table Ê (its rows scaled by signal_scale are the clean z0).
    pub e_hat: Tensor,
    /// (1, e) masked: the unit-RMS mask row m̂, every masked position's input.
    pub mask_hat: Option<Tensor>,
    /// One gradient per parameter (training graphs), views of
    /// `grad_chunks`, which are packed like the parameters.
    pub grads: Vec<Tensor>,
    pub grad_chunks: Vec<Tensor>,
    /// What the forward derives from the parameters: Ê = rmsnorm(E), the
    /// table both ends of the model read, and (mixed precision) the weights'
    /// half copies.
    pub embed_table: Program,
    /// z0, noise, x_t from tokens and timesteps.
    pub front: Program,
    /// From x_t and timesteps to z0_pred and logits.
    pub core: Program,
    /// Losses into `stats`.
    pub loss: Program,
    /// Self-conditioning: zero `sc` (before a first pass) ...
    pub sc_clear: Program,
    /// ... and set it to the masked estimate of that pass.
    pub sc_capture: Program,
    pub backward: Program,
    pub optimizer: Program,
}

impl Graph {
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        options: GraphOptions,
        optimizer: Option<&OptimizerState>,
    ) -> Result<Graph> {
        let r = Recorder::new(gpu, model, options)?;
        let n_layers = r.config.model.n_layers;
        let inputs = Inputs::new(&r)?;
        let stats = r.zeros("stats", &[slot::COUNT])?;
        let table = EmbedTable::new(&r)?;
        let noising = Noising::new(&r)?;
        let time = TimeMlp::new(&r)?;
        let input = InputLayer::new(&r)?;
        let residual: Vec<Tensor> = (0..=n_layers)
            .map(|l| r.zeros(&format!("h{l}"), &[r.rows, r.d]))
            .collect::<Result<_>>()?;
        let blocks: Vec<Block> = (0..n_layers)
            .map(|l| Block::new(&r, l))
            .collect::<Result<_>>()?;
        let final_layer = FinalLayer::new(&r)?;
        let logits = Logits::new(&r)?;
        let loss = Loss::new(&r)?;
        let (cs, h_last) = (&time.cs, &residual[n_layers]);
        let z0_pred = &final_layer.z0_pred;
        let operands = LossOperands {
            z0_pred,
            z0: &noising.z0,
            logits: &logits.logits,
        };

        let mut embed_table = Program::new();
        table.forward(&r, &mut embed_table)?;
        let mut front = Program::new();
        noising.forward(&r, &inputs, &table, &mut front)?;
        let mut core = Program::new();
        time.forward(&r, &inputs, &mut core)?;
        input.forward(&r, &noising.x_t, &residual[0], &mut core)?;
        for (l, block) in blocks.iter().enumerate() {
            block.forward(&r, &inputs, cs, (&residual[l], &residual[l + 1]), &mut core)?;
        }
        final_layer.forward(&r, cs, h_last, &mut core)?;
        let x_t = &noising.x_t;
        logits.forward(&r, &inputs, (z0_pred, x_t), table.e_hat(), &mut core)?;
        let mut loss_program = Program::new();
        loss.forward(&r, &inputs, &operands, &stats, &mut loss_program)?;

        let (mut backward, mut optimizer_program) = (Program::new(), Program::new());
        let (mut grads, mut grad_chunks) = (Vec::new(), Vec::new());
        if options.train {
            let bp = Backprop::new(&r)?;
            let p = &mut backward;
            loss.backward(&r, &inputs, &bp, &operands, &stats, p)?;
            logits.backward(&r, &inputs, &bp, (z0_pred, table.e_hat()), p)?;
            final_layer.backward(&r, &bp, (cs, h_last), p)?;
            for (l, block) in blocks.iter().enumerate().rev() {
                block.backward(&r, &inputs, &bp, (cs, &residual[l]), p)?;
            }
            input.backward(&r, &bp, (x_t, logits.reads_x_t()), p)?;
            noising.backward(&r, &inputs, &bp, &table, p)?;
            table.backward(&r, &bp, p)?;
            time.backward(&r, &bp, p)?;
            if let Some(state) = optimizer {
                optimizer_program = optimizer::record(&r, &inputs, &bp, &stats, state)?;
            }
            (grads, grad_chunks) = (bp.grads.tensors, bp.grads.chunks);
        }
        Ok(Graph {
            options,
            readout: r.readout,
            sc_clear: input.clear(&r)?,
            sc_capture: input.capture(&r, &inputs, z0_pred)?,
            inputs,
            stats,
            x_t: noising.x_t,
            residual,
            sc: input.sc,
            z0_pred: final_layer.z0_pred,
            logits: logits.logits,
            e_hat: table.e_hat().clone(),
            mask_hat: table.mask_hat().cloned(),
            grads,
            grad_chunks,
            embed_table,
            front,
            core,
            loss: loss_program,
            backward,
            optimizer: optimizer_program,
        })
    }

    fn self_conditioned(&self) -> bool {
        !self.sc_capture.commands.is_empty()
    }

    /// The forward with, under self-conditioning, its first pass.
    fn forward(&self) -> Vec<&Program> {
        let mut p = vec![&self.embed_table, &self.front];
        if self.self_conditioned() {
            p.extend([&self.sc_clear, &self.core, &self.sc_capture]);
        }
        p.push(&self.core);
        p
    }

    /// The programs of one training step, in order (one command buffer).
    pub fn train_step(&self) -> Vec<&Program> {
        let mut p = self.forward();
        p.extend([&self.loss, &self.backward, &self.optimizer]);
        p
    }

    /// Forward and losses only (validation).
    pub fn eval_step(&self) -> Vec<&Program> {
        let mut p = self.forward();
        p.push(&self.loss);
        p
    }

    /// Which sequences get the first pass's estimate under self-conditioning.
    pub fn write_self_condition_mask(&self, gpu: &Gpu, mask: &[bool]) -> Result<()> {
        let coef: Vec<f32> = mask
            .iter()
            .flat_map(|&m| [if m { 1.0 } else { 0.0 }, 0.0, 0.0, 0.0])
            .collect();
        gpu.write_f32(&self.inputs.sc_mask, &coef)
    }

    /// Which positions are known (1) — held clean under
    /// `diffusion.known_positions = "clean"`; all 0 until written.
    pub fn write_known(&self, gpu: &Gpu, known: &[f32]) -> Result<()> {
        gpu.write_f32(&self.inputs.known, known)
    }

    /// Writes a hybrid batch: tokens (B·L) and their corruption.
    pub fn write_corruption(&self, gpu: &Gpu, tokens: &[u32], c: &Corruption) -> Result<()> {
        gpu.write_u32(&self.inputs.tokens, tokens)?;
        gpu.write_u32(&self.inputs.timesteps, &c.timesteps)?;
        gpu.write_f32(&self.inputs.coef, &c.coef)?;
        gpu.write_f32(&self.inputs.weight, &c.weight)?;
        gpu.write_f32(&self.inputs.known, &c.clean)
    }

    /// Writes a gaussian batch: tokens (B·L), one timestep per sequence (with its
    /// noising coefficients) and the per-position loss weights.
    pub fn write_batch(
        &self,
        gpu: &Gpu,
        schedule: &NoiseSchedule,
        tokens: &[u32],
        timesteps: &[u32],
        weight: &[f32],
    ) -> Result<()> {
        gpu.write_u32(&self.inputs.tokens, tokens)?;
        gpu.write_u32(&self.inputs.timesteps, timesteps)?;
        let levels: Vec<(f64, f64)> = timesteps
            .iter()
            .map(|&t| schedule.coefficients(t as usize))
            .collect();
        let coef: Vec<f32> = levels
            .iter()
            .flat_map(|&(a, s)| [a as f32, s as f32, 0.0, 0.0])
            .collect();
        gpu.write_f32(&self.inputs.coef, &coef)?;
        self.write_readout(gpu, &levels)?;
        gpu.write_f32(&self.inputs.weight, weight)
    }

    /// gaussian with an output prior: the readout of sequences whose x_t is
    /// at noise level (a_b, s_b); a no-op for every other model.
    pub fn write_readout(&self, gpu: &Gpu, levels: &[(f64, f64)]) -> Result<()> {
        match (&self.readout, &self.inputs.readout) {
            (Some(readout), Some(tensor)) => {
                let coef: Vec<f32> = levels
                    .iter()
                    .flat_map(|&(a, s)| readout.coef(a, s))
                    .collect();
                gpu.write_f32(tensor, &coef)
            }
            _ => Ok(()),
        }
    }
}

/// Plaid's output prior w · log N(x_t; a·S·Ê_v, s²) as a readout: the logits
/// are (α·z0_pred + β·x_t)·Êᵀ with β = w·S·a/s² (S = signal_scale).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readout {
    /// logit_scale / signal_scale.
    pub alpha: f32,
    /// w · signal_scale.
    pub prior: f32,
}

impl Readout {
    fn coef(&self, a: f64, s: f64) -> [f32; 4] {
        let beta = self.prior as f64 * a / (s * s).max(f64::MIN_POSITIVE);
        [self.alpha, beta as f32, 0.0, 0.0]
    }
}
