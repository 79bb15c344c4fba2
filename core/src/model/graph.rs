//! SamNet's forward, backward and optimizer step as recorded GPU work, built
//! once per (batch, sequence length) with every buffer allocated up front,
//! then replayed: a training step is one command buffer with no readback.
//!
//! Forward (rows = B·L; `Ê` the unit-RMS embedding table):
//!   Ê = rmsnorm(E);  z0 = signal_scale · Ê[w];  x_t = a_t z0 + s_t eps
//!     (x_t = z0 at known positions when they are held clean)
//!   c = fc2(silu(fc1(sinusoid(t))));  cs = silu(c);  h = input(x_t)
//!   per block: [sh1 sc1 g1 sh2 sc2 g2] = adaln(cs)
//!     h += g1 · out(attn(norm(h)(1 + sc1) + sh1))
//!     h += g2 · w2(swiglu(w13(norm(h)(1 + sc2) + sh2)))
//!   final: [sh sc] = adaln(cs);  z0_pred = out(norm(h)(1 + sc) + sh)
//!   logits = (logit_scale / signal_scale) · z0_pred · Êᵀ
//!   loss = mse_weight · mse(z0_pred, z0) + ce_weight · ce(logits, w),
//!     both means over positions weighted by `inputs.weight` (0 excludes a
//!     position, e.g. an instruction's prompt)
//! The embedding is normalised row-wise (RMS) rather than left free: under
//! the MSE term free embeddings shrink or collapse, which makes a fixed noise
//! schedule meaningless; unit-RMS rows keep x0's per-coordinate variance at
//! exactly 1 (then scaled by signal_scale) for the whole run.
//! Gradients flow everywhere, the embedding included (through z0 as target,
//! through x_t and through the logits).

use super::Model;
use crate::Result;
use crate::config::{Config, HeadKind, KnownPositions, NormKind};
use crate::gpu::{DType, Dispatch, Gpu, Program, Tensor};
use crate::ops::activation::{silu_backward, silu_forward, swiglu_backward, swiglu_forward};
use crate::ops::adaln::{self, ModShape, ShiftScale};
use crate::ops::attention::AttnShape;
use crate::ops::attention_linear::LinearAttention;
use crate::ops::attention_softmax::{SoftmaxAttention, Span};
use crate::ops::attention_topk::TopkAttention;
use crate::ops::diffusion::{self, SeqShape};
use crate::ops::elementwise::{axpby, fill};
use crate::ops::linear::{self, LinearGrads, LinearShape};
use crate::ops::loss::{self, LossShape, LossSlots};
use crate::ops::matmul::{Matmul, matmul, matmul_split_k};
use crate::ops::norm::{self, NormShape};
use crate::ops::optim::{self, AdamW, OptimSlots};
use crate::ops::precision;
use crate::ops::random::{dropout_backward, dropout_forward, randn};
use crate::ops::rope::{self, RopeTables};
use crate::ops::{embedding, timestep};
use crate::schedule::NoiseSchedule;

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
    /// `diffusion.known_positions = "clean"`; ignored otherwise), else 0.
    pub known: Tensor,
    /// (2) u32: seed and step, keying the GPU's random numbers.
    pub rng_key: Tensor,
    /// (3): lr, 1 − β1^t, 1 − β2^t.
    pub step: Tensor,
    /// (B·L, d) eps, drawn on the GPU unless the caller provides it.
    pub noise: Tensor,
    /// (B, 4): per sequence, whether the self-conditioning pass feeds its
    /// estimate (first column 1) or zeros (0).
    pub sc_mask: Tensor,
}

/// AdamW moments, one pair per parameter; kept across graph rebuilds and
/// saved in checkpoints.
pub struct OptimizerState {
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl OptimizerState {
    pub fn new(gpu: &Gpu, model: &Model) -> Result<Self> {
        let alloc = |prefix: &str| {
            model
                .specs
                .iter()
                .map(|s| gpu.zeros(&format!("{prefix}.{}", s.name), &s.shape, DType::F32))
                .collect::<Result<Vec<_>>>()
        };
        Ok(OptimizerState {
            m: alloc("m")?,
            v: alloc("v")?,
        })
    }
}

enum HeadGroupKernel {
    Linear(LinearAttention),
    Topk(TopkAttention),
    Softmax(SoftmaxAttention),
}

struct HeadGroup {
    shape: AttnShape,
    rope: bool,
    kernel: HeadGroupKernel,
}

/// Saved activations of one block (its input residual is `Graph::residual[l]`).
struct Block {
    modulation: Tensor,
    norm1: Norm,
    m1: Tensor,
    qkv: Tensor,
    att: Tensor,
    o: Tensor,
    o_dropped: Option<Tensor>,
    h_mid: Tensor,
    norm2: Norm,
    m2: Tensor,
    f13: Tensor,
    sw: Tensor,
    f: Tensor,
    f_dropped: Option<Tensor>,
    heads: Vec<HeadGroup>,
}

/// A normalisation's output and saved statistics.
struct Norm {
    y: Tensor,
    mean: Option<Tensor>,
    rstd: Tensor,
}

impl Norm {
    fn new(gpu: &Gpu, kind: NormKind, name: &str, rows: usize, cols: usize) -> Result<Self> {
        Ok(Norm {
            y: gpu.zeros(&format!("{name}.y"), &[rows, cols], DType::F32)?,
            mean: match kind {
                NormKind::Layer => Some(gpu.zeros(&format!("{name}.mean"), &[rows], DType::F32)?),
                NormKind::Rms => None,
            },
            rstd: gpu.zeros(&format!("{name}.rstd"), &[rows], DType::F32)?,
        })
    }
}

/// The recorded passes and every buffer they use.
pub struct Graph {
    pub options: GraphOptions,
    pub inputs: Inputs,
    /// Scalars of the step (see [`slot`]); read back every N steps.
    pub stats: Tensor,
    /// (B·L, d) the noised input of the denoiser; the sampler writes it directly.
    pub x_t: Tensor,
    /// The residual stream before each block and after the last, (B·L, d) each.
    pub residual: Vec<Tensor>,
    /// (B·L, d) the self-conditioning input: a previous estimate of z0 (or zeros).
    pub sc: Tensor,
    /// (B·L, d) the denoiser's estimate of z0 = signal_scale · x0.
    pub z0_pred: Tensor,
    /// (B·L, V) logits against the tied, normalised embeddings.
    pub logits: Tensor,
    /// (V, d) the unit-RMS embedding table Ê (its rows scaled by signal_scale are the clean z0).
    pub e_hat: Tensor,
    /// One gradient per parameter (training graphs).
    pub grads: Vec<Tensor>,
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
        Builder::new(gpu, model, options)?.build(optimizer)
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

    /// Writes a batch: tokens (B·L), one timestep per sequence (with its
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
        let coef: Vec<f32> = timesteps
            .iter()
            .flat_map(|&t| {
                let (a, s) = schedule.coefficients(t as usize);
                [a as f32, s as f32, 0.0, 0.0]
            })
            .collect();
        gpu.write_f32(&self.inputs.coef, &coef)?;
        gpu.write_f32(&self.inputs.weight, weight)
    }
}

struct Builder<'a> {
    gpu: &'a Gpu,
    model: &'a Model,
    config: &'a Config,
    options: GraphOptions,
    rows: usize,
    d: usize,
    hidden: usize,
    vocab: usize,
    tables: Tables,
    /// Mixed precision: the f16 copy of each matmul weight, by name.
    half_weights: Vec<(String, Tensor)>,
}

struct Tables {
    timestep: Tensor,
    rope: Option<RopeTables>,
}

impl<'a> Builder<'a> {
    fn new(gpu: &'a Gpu, model: &'a Model, options: GraphOptions) -> Result<Self> {
        let config = &model.config;
        let m = &config.model;
        let needs_rope = m.rope && m.head_mix.iter().any(|g| g.kind.uses_rope() && g.count > 0);
        let tables = Tables {
            timestep: timestep::upload_table(
                gpu,
                config.diffusion.timesteps,
                m.time_embed_dim,
                10_000.0,
            )?,
            rope: if needs_rope {
                Some(RopeTables::new(
                    gpu,
                    m.max_seq_len.max(options.seq),
                    config.head_dim(),
                    m.rope_base as f64,
                )?)
            } else {
                None
            },
        };
        // Every matrix named `.weight` is a matmul's B operand except the
        // embedding, which the matmuls read as the normalised Ê.
        let half_weights = if options.half_operands {
            model
                .specs
                .iter()
                .filter(|s| s.name.ends_with(".weight") && s.name != "embedding.weight")
                .map(|s| {
                    let copy = gpu.zeros(&format!("{}.half", s.name), &s.shape, DType::F16)?;
                    Ok((s.name.clone(), copy))
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Builder {
            gpu,
            model,
            config,
            options,
            rows: options.batch * options.seq,
            d: m.d_model,
            hidden: config.ffn_hidden(),
            vocab: m.vocab_size,
            tables,
            half_weights,
        })
    }

    /// The weight `name` as the matmuls read it: its half copy under mixed
    /// precision, else the parameter itself.
    fn w(&self, name: &str) -> &Tensor {
        self.half_weights
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| self.p(name), |(_, t)| t)
    }

    fn zeros(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.gpu.zeros(name, shape, DType::F32)
    }

    fn p(&self, name: &str) -> &Tensor {
        self.model.param(name)
    }

    fn norm_shape(&self, rows: usize, cols: usize) -> NormShape {
        NormShape {
            rows,
            cols,
            eps: self.config.model.norm_eps,
        }
    }

    fn mod_shape(&self, stride: usize) -> ModShape {
        ModShape {
            batch: self.options.batch,
            seq: self.options.seq,
            d: self.d,
            stride,
        }
    }

    fn lin(&self, rows: usize, d_in: usize, d_out: usize) -> LinearShape {
        LinearShape { rows, d_in, d_out }
    }

    fn head_groups(&self, layer: usize) -> Result<Vec<HeadGroup>> {
        let m = &self.config.model;
        let mut groups = Vec::new();
        let mut start = 0;
        for (gi, g) in m.head_mix.iter().enumerate().filter(|(_, g)| g.count > 0) {
            let shape = AttnShape {
                batch: self.options.batch,
                seq: self.options.seq,
                n_heads: m.n_heads,
                head_dim: self.config.head_dim(),
                head_start: start,
                head_count: g.count,
            };
            let name = format!("blocks.{layer}.attn.group{gi}");
            let kernel = match g.kind {
                HeadKind::Linear => HeadGroupKernel::Linear(LinearAttention::new(
                    self.gpu,
                    shape,
                    m.linear_attn_eps,
                    &name,
                )?),
                HeadKind::Topk => {
                    HeadGroupKernel::Topk(TopkAttention::new(self.gpu, shape, m.topk, &name)?)
                }
                HeadKind::Window => HeadGroupKernel::Softmax(SoftmaxAttention::new(
                    self.gpu,
                    shape,
                    Span::HalfWindow(m.window / 2),
                    &name,
                )?),
                HeadKind::Full => HeadGroupKernel::Softmax(SoftmaxAttention::new(
                    self.gpu,
                    shape,
                    Span::Full,
                    &name,
                )?),
            };
            groups.push(HeadGroup {
                shape,
                rope: m.rope && g.kind.uses_rope(),
                kernel,
            });
            start += g.count;
        }
        Ok(groups)
    }

    fn block(&self, layer: usize) -> Result<Block> {
        let (rows, d, kind) = (self.rows, self.d, self.config.model.norm);
        let n = |s: &str| format!("blocks.{layer}.{s}");
        let dropout = self.options.dropout && self.config.model.dropout > 0.0;
        Ok(Block {
            modulation: self.zeros(&n("modulation"), &[self.options.batch, 6 * d])?,
            norm1: Norm::new(self.gpu, kind, &n("norm1"), rows, d)?,
            m1: self.zeros(&n("m1"), &[rows, d])?,
            qkv: self.zeros(&n("qkv"), &[rows, 3 * d])?,
            att: self.zeros(&n("att"), &[rows, d])?,
            o: self.zeros(&n("o"), &[rows, d])?,
            o_dropped: if dropout {
                Some(self.zeros(&n("o_dropped"), &[rows, d])?)
            } else {
                None
            },
            h_mid: self.zeros(&n("h_mid"), &[rows, d])?,
            norm2: Norm::new(self.gpu, kind, &n("norm2"), rows, d)?,
            m2: self.zeros(&n("m2"), &[rows, d])?,
            f13: self.zeros(&n("f13"), &[rows, 2 * self.hidden])?,
            sw: self.zeros(&n("sw"), &[rows, self.hidden])?,
            f: self.zeros(&n("f"), &[rows, d])?,
            f_dropped: if dropout {
                Some(self.zeros(&n("f_dropped"), &[rows, d])?)
            } else {
                None
            },
            heads: self.head_groups(layer)?,
        })
    }

    fn build(self, optimizer: Option<&OptimizerState>) -> Result<Graph> {
        let gpu = self.gpu;
        let (o, cfg) = (self.options, self.config);
        let (b, rows, d, vocab, hidden) = (o.batch, self.rows, self.d, self.vocab, self.hidden);
        let (m, diff) = (&cfg.model, &cfg.diffusion);
        let norm_kind = m.norm;
        let seq_shape = SeqShape {
            batch: b,
            seq: o.seq,
            cols: d,
        };
        let dropout_p = if o.dropout { m.dropout } else { 0.0 };
        let push = |p: &mut Program, ds: Vec<Dispatch>| ds.into_iter().for_each(|x| p.push(x));

        let inputs = Inputs {
            tokens: gpu.zeros("tokens", &[rows], DType::U32)?,
            timesteps: gpu.zeros("timesteps", &[b], DType::U32)?,
            coef: self.zeros("coef", &[b, 4])?,
            weight: self.zeros("weight", &[rows])?,
            known: self.zeros("known", &[rows])?,
            rng_key: gpu.zeros("rng_key", &[2], DType::U32)?,
            step: self.zeros("step", &[3])?,
            noise: self.zeros("noise", &[rows, d])?,
            sc_mask: self.zeros("sc_mask", &[b, 4])?,
        };
        let sc = self.zeros("sc", &[rows, d])?;
        let self_condition = diff.self_condition;
        let hold_known = diff.known_positions == KnownPositions::Clean;
        let stats = self.zeros("stats", &[slot::COUNT])?;
        let e_hat = self.zeros("e_hat", &[vocab, d])?;
        let e_rstd = self.zeros("e_hat.rstd", &[vocab])?;
        let z0 = self.zeros("z0", &[rows, d])?;
        let x_t = self.zeros("x_t", &[rows, d])?;
        let temb = self.zeros("temb", &[b, m.time_embed_dim])?;
        let (c1, c1s, c, cs) = (
            self.zeros("c1", &[b, d])?,
            self.zeros("c1s", &[b, d])?,
            self.zeros("c", &[b, d])?,
            self.zeros("cs", &[b, d])?,
        );
        let residual: Vec<Tensor> = (0..=m.n_layers)
            .map(|l| self.zeros(&format!("h{l}"), &[rows, d]))
            .collect::<Result<_>>()?;
        let blocks: Vec<Block> = (0..m.n_layers)
            .map(|l| self.block(l))
            .collect::<Result<_>>()?;
        let final_mod = self.zeros("final.modulation", &[b, 2 * d])?;
        let final_norm = Norm::new(gpu, norm_kind, "final.norm", rows, d)?;
        let final_m = self.zeros("final.m", &[rows, d])?;
        let z0_pred = self.zeros("z0_pred", &[rows, d])?;
        let logits = self.zeros("logits", &[rows, vocab])?;
        let lse = self.zeros("logits.lse", &[rows])?;
        let logit_alpha = diff.logit_scale / diff.signal_scale;
        let e_norm = NormShape {
            rows: vocab,
            cols: d,
            eps: m.norm_eps,
        };
        let nshape = self.norm_shape(rows, d);
        let (ms, fms) = (self.mod_shape(6 * d), self.mod_shape(2 * d));
        let (shift_scale1, shift_scale2) = (
            ShiftScale { shift: 0, scale: d },
            ShiftScale {
                shift: 3 * d,
                scale: 4 * d,
            },
        );
        let (gate1, gate2) = (2 * d, 5 * d);

        // ---------------------------------------------------------------- front
        let mut embed_table = Program::new();
        embed_table.push(norm::forward(
            gpu,
            NormKind::Rms,
            e_norm,
            self.p("embedding.weight"),
            &e_hat,
            None,
            &e_rstd,
        )?);
        for (name, copy) in &self.half_weights {
            embed_table.push(precision::half_copy(gpu, self.p(name), copy)?);
        }
        let mut front = Program::new();
        front.push(embedding::forward(
            gpu,
            &inputs.tokens,
            &e_hat,
            diff.signal_scale,
            &z0,
        )?);
        if o.generate_noise {
            front.push(randn(
                gpu,
                &inputs.rng_key,
                NOISE_STREAM,
                1.0,
                &inputs.noise,
            )?);
        }
        front.push(if hold_known {
            diffusion::q_sample_held_forward(
                gpu,
                seq_shape,
                &inputs.coef,
                &z0,
                &inputs.noise,
                &inputs.known,
                &x_t,
            )?
        } else {
            diffusion::q_sample_forward(gpu, seq_shape, &inputs.coef, &z0, &inputs.noise, &x_t)?
        });

        // ---------------------------------------------------------------- core
        let mut core = Program::new();
        let lin = |p: &mut Program,
                   rows: usize,
                   d_in: usize,
                   d_out: usize,
                   x: &Tensor,
                   name: &str,
                   y: &Tensor|
         -> Result<()> {
            let (w, bias) = (
                self.w(&format!("{name}.weight")),
                self.p(&format!("{name}.bias")),
            );
            push(
                p,
                linear::forward(gpu, self.lin(rows, d_in, d_out), x, w, Some(bias), y)?,
            );
            Ok(())
        };
        core.push(timestep::embedding(
            gpu,
            &inputs.timesteps,
            &self.tables.timestep,
            &temb,
        )?);
        lin(&mut core, b, m.time_embed_dim, d, &temb, "time.fc1", &c1)?;
        core.push(silu_forward(gpu, &c1, &c1s)?);
        lin(&mut core, b, d, d, &c1s, "time.fc2", &c)?;
        core.push(silu_forward(gpu, &c, &cs)?);
        lin(&mut core, rows, d, d, &x_t, "input", &residual[0])?;
        if self_condition {
            let mm = Matmul::new(rows, d, d)
                .trans_b()
                .accumulate()
                .half_operands(o.half_operands);
            core.push(matmul(
                gpu,
                &sc,
                self.w("input_sc.weight"),
                &residual[0],
                mm,
            )?);
        }
        for (l, blk) in blocks.iter().enumerate() {
            let n = |s: &str| format!("blocks.{l}.{s}");
            let (h_in, h_out) = (&residual[l], &residual[l + 1]);
            lin(&mut core, b, d, 6 * d, &cs, &n("adaln"), &blk.modulation)?;
            core.push(norm::forward(
                gpu,
                norm_kind,
                nshape,
                h_in,
                &blk.norm1.y,
                blk.norm1.mean.as_ref(),
                &blk.norm1.rstd,
            )?);
            core.push(adaln::modulate_forward(
                gpu,
                ms,
                shift_scale1,
                &blk.modulation,
                &blk.norm1.y,
                &blk.m1,
            )?);
            lin(&mut core, rows, d, 3 * d, &blk.m1, &n("attn.qkv"), &blk.qkv)?;
            for g in &blk.heads {
                if g.rope {
                    core.push(rope::forward(gpu, g.shape, self.rope_tables(), &blk.qkv)?);
                }
                match &g.kernel {
                    HeadGroupKernel::Linear(k) => {
                        push(&mut core, k.forward(gpu, &blk.qkv, &blk.att)?)
                    }
                    HeadGroupKernel::Topk(k) => core.push(k.forward(gpu, &blk.qkv, &blk.att)?),
                    HeadGroupKernel::Softmax(k) => core.push(k.forward(gpu, &blk.qkv, &blk.att)?),
                }
            }
            lin(&mut core, rows, d, d, &blk.att, &n("attn.out"), &blk.o)?;
            if let Some(t) = &blk.o_dropped {
                core.push(dropout_forward(
                    gpu,
                    &inputs.rng_key,
                    dropout_stream(l, 0),
                    dropout_p,
                    &blk.o,
                    t,
                )?);
            }
            core.push(axpby(gpu, 1.0, h_in, 0.0, &blk.h_mid)?);
            core.push(adaln::gate_forward(
                gpu,
                ms,
                gate1,
                &blk.modulation,
                blk.o_dropped.as_ref().unwrap_or(&blk.o),
                &blk.h_mid,
            )?);
            core.push(norm::forward(
                gpu,
                norm_kind,
                nshape,
                &blk.h_mid,
                &blk.norm2.y,
                blk.norm2.mean.as_ref(),
                &blk.norm2.rstd,
            )?);
            core.push(adaln::modulate_forward(
                gpu,
                ms,
                shift_scale2,
                &blk.modulation,
                &blk.norm2.y,
                &blk.m2,
            )?);
            lin(
                &mut core,
                rows,
                d,
                2 * hidden,
                &blk.m2,
                &n("ffn.w13"),
                &blk.f13,
            )?;
            core.push(swiglu_forward(gpu, hidden, &blk.f13, &blk.sw)?);
            lin(&mut core, rows, hidden, d, &blk.sw, &n("ffn.w2"), &blk.f)?;
            if let Some(t) = &blk.f_dropped {
                core.push(dropout_forward(
                    gpu,
                    &inputs.rng_key,
                    dropout_stream(l, 1),
                    dropout_p,
                    &blk.f,
                    t,
                )?);
            }
            core.push(axpby(gpu, 1.0, &blk.h_mid, 0.0, h_out)?);
            core.push(adaln::gate_forward(
                gpu,
                ms,
                gate2,
                &blk.modulation,
                blk.f_dropped.as_ref().unwrap_or(&blk.f),
                h_out,
            )?);
        }
        let h_last = &residual[m.n_layers];
        lin(&mut core, b, d, 2 * d, &cs, "final.adaln", &final_mod)?;
        core.push(norm::forward(
            gpu,
            norm_kind,
            nshape,
            h_last,
            &final_norm.y,
            final_norm.mean.as_ref(),
            &final_norm.rstd,
        )?);
        core.push(adaln::modulate_forward(
            gpu,
            fms,
            shift_scale1,
            &final_mod,
            &final_norm.y,
            &final_m,
        )?);
        lin(&mut core, rows, d, d, &final_m, "final.out", &z0_pred)?;
        core.push(matmul(
            gpu,
            &z0_pred,
            &e_hat,
            &logits,
            Matmul::new(rows, vocab, d)
                .trans_b()
                .alpha(logit_alpha)
                .half_operands(o.half_operands),
        )?);

        // ---------------------------------------------------------------- loss
        let mut loss_program = Program::new();
        let mse_shape = LossShape { rows, cols: d };
        let ce_shape = LossShape { rows, cols: vocab };
        push(
            &mut loss_program,
            loss::weight_sum(gpu, &inputs.weight, &stats, LOSS_SLOTS)?,
        );
        push(
            &mut loss_program,
            loss::mse_forward(
                gpu,
                mse_shape,
                LOSS_SLOTS,
                &z0_pred,
                &z0,
                &inputs.weight,
                &stats,
                slot::MSE_SUM,
                slot::MSE,
            )?,
        );
        push(
            &mut loss_program,
            loss::ce_forward(
                gpu,
                ce_shape,
                LOSS_SLOTS,
                &logits,
                &inputs.tokens,
                &inputs.weight,
                &lse,
                &stats,
                slot::CE_SUM,
                slot::CE,
            )?,
        );

        let mut backward = Program::new();
        let mut optimizer_program = Program::new();
        let mut grads = Vec::new();
        if o.train {
            grads = self
                .model
                .specs
                .iter()
                .map(|s| self.zeros(&format!("grad.{}", s.name), &s.shape))
                .collect::<Result<Vec<_>>>()?;
            let grad = |name: &str| -> &Tensor {
                &grads[self
                    .model
                    .specs
                    .iter()
                    .position(|s| s.name == name)
                    .expect("known parameter")]
            };
            // Scratch shared by all blocks, which run one after another.
            let dh = self.zeros("d.h", &[rows, d])?;
            let (d_a, d_b) = (
                self.zeros("d.a", &[rows, d])?,
                self.zeros("d.b", &[rows, d])?,
            );
            let d_sw = self.zeros("d.sw", &[rows, hidden])?;
            let d_f13 = self.zeros("d.f13", &[rows, 2 * hidden])?;
            let d_qkv = self.zeros("d.qkv", &[rows, 3 * d])?;
            let d_mod = self.zeros("d.modulation", &[b, 6 * d])?;
            let d_final_mod = self.zeros("d.final.modulation", &[b, 2 * d])?;
            let (d_cs, d_c, d_c1s, d_c1) = (
                self.zeros("d.cs", &[b, d])?,
                self.zeros("d.c", &[b, d])?,
                self.zeros("d.c1s", &[b, d])?,
                self.zeros("d.c1", &[b, d])?,
            );
            let (d_z0, d_z0_pred, d_x_t) = (
                self.zeros("d.z0", &[rows, d])?,
                self.zeros("d.z0_pred", &[rows, d])?,
                self.zeros("d.x_t", &[rows, d])?,
            );
            let d_logits = self.zeros("d.logits", &[rows, vocab])?;
            let d_e_hat = self.zeros("d.e_hat", &[vocab, d])?;
            let bw = &mut backward;
            // Linear layer `name` applied to x: dW, db overwrite; dx (optional) overwrites or accumulates.
            let lin_back = |bw: &mut Program,
                            rows: usize,
                            d_in: usize,
                            d_out: usize,
                            x: &Tensor,
                            name: &str,
                            dy: &Tensor,
                            dx: Option<&Tensor>,
                            accumulate_dx: bool|
             -> Result<()> {
                let g = LinearGrads {
                    dx,
                    dw: grad(&format!("{name}.weight")),
                    db: Some(grad(&format!("{name}.bias"))),
                    accumulate_dx,
                    accumulate_dw: false,
                };
                push(
                    bw,
                    linear::backward(
                        gpu,
                        self.lin(rows, d_in, d_out),
                        x,
                        self.w(&format!("{name}.weight")),
                        dy,
                        g,
                    )?,
                );
                Ok(())
            };
            // Back through y = modulate(norm(h)) from dy in d_a: d_b takes d norm(h),
            // dh gets dh (overwritten or accumulated), dmod the modulation's part.
            let modulated_norm_back = |bw: &mut Program,
                                       mshape: ModShape,
                                       at: ShiftScale,
                                       modulation: &Tensor,
                                       norm: &Norm,
                                       h: &Tensor,
                                       dmod: &Tensor,
                                       accumulate_dh: bool|
             -> Result<()> {
                push(
                    bw,
                    adaln::modulate_backward(
                        gpu, mshape, at, modulation, &norm.y, &d_a, &d_b, dmod,
                    )?,
                );
                bw.push(norm::backward(
                    gpu,
                    norm_kind,
                    nshape,
                    h,
                    norm.mean.as_ref(),
                    &norm.rstd,
                    &d_b,
                    &dh,
                    accumulate_dh,
                )?);
                Ok(())
            };
            // Back through a residual branch h + g·y (y after dropout in training)
            // from dh: d_a takes d y before dropout, d_mod the gate's part.
            let gated_branch_back = |bw: &mut Program,
                                     modulation: &Tensor,
                                     gate: usize,
                                     y: &Tensor,
                                     dropped: Option<&Tensor>,
                                     stream: u32|
             -> Result<()> {
                push(
                    bw,
                    adaln::gate_backward(
                        gpu,
                        ms,
                        gate,
                        modulation,
                        dropped.unwrap_or(y),
                        &dh,
                        &d_a,
                        &d_mod,
                    )?,
                );
                if dropped.is_some() {
                    bw.push(dropout_backward(
                        gpu,
                        &inputs.rng_key,
                        stream,
                        dropout_p,
                        &d_a,
                        &d_b,
                    )?);
                    bw.push(axpby(gpu, 1.0, &d_b, 0.0, &d_a)?);
                }
                Ok(())
            };

            // Losses: dz0_pred and the target's dz0 (overwrite), dlogits; then logits = α z0_pred Êᵀ.
            bw.push(loss::mse_backward(
                gpu,
                mse_shape,
                LOSS_SLOTS,
                diff.mse_weight,
                &z0_pred,
                &z0,
                &inputs.weight,
                &stats,
                &d_z0_pred,
                &d_z0,
            )?);
            bw.push(loss::ce_backward(
                gpu,
                ce_shape,
                LOSS_SLOTS,
                diff.ce_weight,
                &logits,
                &inputs.tokens,
                &inputs.weight,
                &lse,
                &stats,
                &d_logits,
            )?);
            bw.push(matmul(
                gpu,
                &d_logits,
                &e_hat,
                &d_z0_pred,
                Matmul::new(rows, d, vocab)
                    .alpha(logit_alpha)
                    .accumulate()
                    .half_operands(o.half_operands),
            )?);
            push(
                bw,
                matmul_split_k(
                    gpu,
                    &d_logits,
                    &z0_pred,
                    &d_e_hat,
                    Matmul::new(vocab, d, rows)
                        .trans_a()
                        .alpha(logit_alpha)
                        .half_operands(o.half_operands),
                )?,
            );
            // Final layer; dh starts here (overwrite), dcs too.
            lin_back(
                bw,
                rows,
                d,
                d,
                &final_m,
                "final.out",
                &d_z0_pred,
                Some(&d_a),
                false,
            )?;
            modulated_norm_back(
                bw,
                fms,
                shift_scale1,
                &final_mod,
                &final_norm,
                h_last,
                &d_final_mod,
                false,
            )?;
            lin_back(
                bw,
                b,
                d,
                2 * d,
                &cs,
                "final.adaln",
                &d_final_mod,
                Some(&d_cs),
                false,
            )?;
            // Blocks, last to first; dh holds the gradient of the block's output.
            for (l, blk) in blocks.iter().enumerate().rev() {
                let n = |s: &str| format!("blocks.{l}.{s}");
                let h_in = &residual[l];
                // h_out = h_mid + g2 · f.
                gated_branch_back(
                    bw,
                    &blk.modulation,
                    gate2,
                    &blk.f,
                    blk.f_dropped.as_ref(),
                    dropout_stream(l, 1),
                )?;
                lin_back(
                    bw,
                    rows,
                    hidden,
                    d,
                    &blk.sw,
                    &n("ffn.w2"),
                    &d_a,
                    Some(&d_sw),
                    false,
                )?;
                bw.push(swiglu_backward(gpu, hidden, &blk.f13, &d_sw, &d_f13)?);
                lin_back(
                    bw,
                    rows,
                    d,
                    2 * hidden,
                    &blk.m2,
                    &n("ffn.w13"),
                    &d_f13,
                    Some(&d_a),
                    false,
                )?;
                modulated_norm_back(
                    bw,
                    ms,
                    shift_scale2,
                    &blk.modulation,
                    &blk.norm2,
                    &blk.h_mid,
                    &d_mod,
                    true,
                )?;
                // h_mid = h_in + g1 · o.
                gated_branch_back(
                    bw,
                    &blk.modulation,
                    gate1,
                    &blk.o,
                    blk.o_dropped.as_ref(),
                    dropout_stream(l, 0),
                )?;
                lin_back(
                    bw,
                    rows,
                    d,
                    d,
                    &blk.att,
                    &n("attn.out"),
                    &d_a,
                    Some(&d_b),
                    false,
                )?;
                for g in &blk.heads {
                    match &g.kernel {
                        HeadGroupKernel::Linear(k) => {
                            push(bw, k.backward(gpu, &blk.qkv, &blk.att, &d_b, &d_qkv)?)
                        }
                        HeadGroupKernel::Topk(k) => {
                            push(bw, k.backward(gpu, &blk.qkv, &d_b, &d_qkv)?)
                        }
                        HeadGroupKernel::Softmax(k) => {
                            push(bw, k.backward(gpu, &blk.qkv, &blk.att, &d_b, &d_qkv)?)
                        }
                    }
                    if g.rope {
                        bw.push(rope::backward(gpu, g.shape, self.rope_tables(), &d_qkv)?);
                    }
                }
                lin_back(
                    bw,
                    rows,
                    d,
                    3 * d,
                    &blk.m1,
                    &n("attn.qkv"),
                    &d_qkv,
                    Some(&d_a),
                    false,
                )?;
                modulated_norm_back(
                    bw,
                    ms,
                    shift_scale1,
                    &blk.modulation,
                    &blk.norm1,
                    h_in,
                    &d_mod,
                    true,
                )?;
                lin_back(bw, b, d, 6 * d, &cs, &n("adaln"), &d_mod, Some(&d_cs), true)?;
            }
            // Input projection, noising, embedding.
            lin_back(bw, rows, d, d, &x_t, "input", &dh, Some(&d_x_t), false)?;
            if self_condition {
                // The estimate fed back is detached: only the weight learns.
                let mm = Matmul::new(d, d, rows)
                    .trans_a()
                    .half_operands(o.half_operands);
                push(
                    bw,
                    matmul_split_k(gpu, &dh, &sc, grad("input_sc.weight"), mm)?,
                );
            }
            bw.push(if hold_known {
                diffusion::q_sample_held_backward(
                    gpu,
                    seq_shape,
                    &inputs.coef,
                    &inputs.known,
                    &d_x_t,
                    &d_z0,
                    true,
                )?
            } else {
                diffusion::q_sample_backward(gpu, seq_shape, &inputs.coef, &d_x_t, &d_z0, true)?
            });
            push(
                bw,
                embedding::backward(
                    gpu,
                    &inputs.tokens,
                    &d_z0,
                    diff.signal_scale,
                    &d_e_hat,
                    true,
                )?,
            );
            bw.push(norm::backward(
                gpu,
                NormKind::Rms,
                e_norm,
                self.p("embedding.weight"),
                None,
                &e_rstd,
                &d_e_hat,
                grad("embedding.weight"),
                false,
            )?);
            // Timestep MLP.
            bw.push(silu_backward(gpu, &c, &d_cs, &d_c)?);
            lin_back(bw, b, d, d, &c1s, "time.fc2", &d_c, Some(&d_c1s), false)?;
            bw.push(silu_backward(gpu, &c1, &d_c1s, &d_c1)?);
            lin_back(
                bw,
                b,
                m.time_embed_dim,
                d,
                &temb,
                "time.fc1",
                &d_c1,
                None,
                false,
            )?;

            // ------------------------------------------------------------ optimizer
            if let Some(state) = optimizer {
                let t = &cfg.train;
                push(
                    &mut optimizer_program,
                    optim::grad_sumsq(gpu, &grads.iter().collect::<Vec<_>>(), &stats, OPTIM_SLOTS)?,
                );
                optimizer_program.push(optim::clip_scale(gpu, &stats, OPTIM_SLOTS, t.grad_clip)?);
                for (i, spec) in self.model.specs.iter().enumerate() {
                    let h = AdamW {
                        beta1: t.beta1,
                        beta2: t.beta2,
                        eps: t.adam_eps,
                        weight_decay: if spec.decay { t.weight_decay } else { 0.0 },
                    };
                    optimizer_program.push(optim::adamw(
                        gpu,
                        h,
                        OPTIM_SLOTS,
                        &stats,
                        &inputs.step,
                        &self.model.params[i],
                        &grads[i],
                        &state.m[i],
                        &state.v[i],
                    )?);
                }
                if o.half_operands {
                    optimizer_program.push(optim::update_loss_scale(
                        gpu,
                        &stats,
                        OPTIM_SLOTS,
                        LOSS_SCALE_GROWTH_INTERVAL,
                    )?);
                }
            }
        }

        let (mut sc_clear, mut sc_capture) = (Program::new(), Program::new());
        if self_condition {
            sc_clear.push(fill(gpu, &sc, 0.0)?);
            // sc = mask[b] · z0_pred (q_sample with coefficients (mask, 0)).
            sc_capture.push(diffusion::q_sample_forward(
                gpu,
                seq_shape,
                &inputs.sc_mask,
                &z0_pred,
                &inputs.noise,
                &sc,
            )?);
        }
        Ok(Graph {
            options: o,
            inputs,
            stats,
            x_t,
            residual,
            sc,
            z0_pred,
            logits,
            e_hat,
            grads,
            embed_table,
            front,
            core,
            loss: loss_program,
            sc_clear,
            sc_capture,
            backward,
            optimizer: optimizer_program,
        })
    }

    fn rope_tables(&self) -> &RopeTables {
        self.tables
            .rope
            .as_ref()
            .expect("RoPE tables exist whenever a head group uses RoPE")
    }
}
