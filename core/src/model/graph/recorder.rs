//! What every layer's recording needs: the device, the model and its shapes
//! ([`Recorder`]), and on the backward side the parameter gradients and the
//! scratch the layers hand each other ([`Backprop`]).

use crate::Result;
use crate::config::{Config, DiffusionKind};
use crate::gpu::{DType, Gpu, Packed, Program, Tensor};
use crate::model::Model;
use crate::ops::adaln::{self, ModShape, ShiftScale};
use crate::ops::diffusion::SeqShape;
use crate::ops::linear::{self, LinearGrads, LinearShape};
use crate::ops::rope::RopeTables;
use crate::ops::timestep;

use super::{GraphOptions, Readout};

pub(super) struct Recorder<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a Model,
    pub config: &'a Config,
    pub options: GraphOptions,
    /// B·L.
    pub rows: usize,
    pub d: usize,
    /// Width of the embedding table and the diffused vectors (`Config::embed_dim`).
    pub e: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub timestep_table: Tensor,
    rope: Option<RopeTables>,
    /// Mixed precision: the f16 copy of each matmul weight, by name.
    pub half_weights: Vec<(String, Tensor)>,
    /// gaussian with an output prior: the logits' readout.
    pub readout: Option<Readout>,
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &'a Gpu, model: &'a Model, options: GraphOptions) -> Result<Self> {
        let config = &model.config;
        let m = &config.model;
        let needs_rope = m.rope && m.head_mix.iter().any(|g| g.kind.uses_rope() && g.count > 0);
        let rope = if needs_rope {
            Some(RopeTables::new(
                gpu,
                m.max_seq_len.max(options.seq),
                config.head_dim(),
                m.rope_base as f64,
            )?)
        } else {
            None
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
        Ok(Recorder {
            gpu,
            model,
            config,
            options,
            rows: options.batch * options.seq,
            d: m.d_model,
            e: config.embed_dim(),
            hidden: config.ffn_hidden(),
            vocab: m.vocab_size,
            timestep_table: timestep::upload_table(
                gpu,
                config.diffusion.timesteps,
                m.time_embed_dim,
                10_000.0,
            )?,
            rope,
            half_weights,
            readout: Self::readout(config),
        })
    }

    fn readout(config: &Config) -> Option<Readout> {
        let diff = &config.diffusion;
        (diff.kind == DiffusionKind::Gaussian && diff.output_prior > 0.0).then(|| Readout {
            alpha: diff.logit_scale / diff.signal_scale,
            prior: diff.output_prior * diff.signal_scale,
        })
    }

    /// The weight `name` as the matmuls read it: its half copy under mixed
    /// precision, else the parameter itself.
    pub fn w(&self, name: &str) -> &Tensor {
        self.half_weights
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| self.p(name), |(_, t)| t)
    }

    pub fn p(&self, name: &str) -> &Tensor {
        self.model.param(name)
    }

    pub fn zeros(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.gpu.zeros(name, shape, DType::F32)
    }

    /// Zeros when `on`, else nothing (buffers only some configurations use).
    pub fn zeros_if(&self, on: bool, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        on.then(|| self.zeros(name, shape)).transpose()
    }

    /// The (B, L, e) diffused vectors of a whole batch (z0, eps, x_t).
    pub fn embed_shape(&self) -> SeqShape {
        SeqShape {
            batch: self.options.batch,
            seq: self.options.seq,
            cols: self.e,
        }
    }

    /// Activations modulated by a (batch, stride) tensor of per-sequence vectors.
    pub fn mod_shape(&self, stride: usize) -> ModShape {
        ModShape {
            batch: self.options.batch,
            seq: self.options.seq,
            d: self.d,
            stride,
        }
    }

    pub fn rope_tables(&self) -> &RopeTables {
        self.rope
            .as_ref()
            .expect("RoPE tables exist whenever a head group uses RoPE")
    }

    /// `y = x·Wᵀ + b` for the linear layer `name` applied to `rows` vectors.
    pub fn linear(
        &self,
        p: &mut Program,
        rows: usize,
        (d_in, d_out): (usize, usize),
        x: &Tensor,
        name: &str,
        y: &Tensor,
    ) -> Result<()> {
        let shape = LinearShape { rows, d_in, d_out };
        self.linear_with(p, shape, (x, name), Some(self.bias(name)), y)
    }

    /// `y = x·Wᵀ` for the linear layer `name`: the kernel that reads y adds
    /// the bias, saving a pass over y.
    pub fn linear_product(
        &self,
        p: &mut Program,
        rows: usize,
        (d_in, d_out): (usize, usize),
        x: &Tensor,
        name: &str,
        y: &Tensor,
    ) -> Result<()> {
        let shape = LinearShape { rows, d_in, d_out };
        self.linear_with(p, shape, (x, name), None, y)
    }

    fn linear_with(
        &self,
        p: &mut Program,
        shape: LinearShape,
        (x, name): (&Tensor, &str),
        bias: Option<&Tensor>,
        y: &Tensor,
    ) -> Result<()> {
        let w = self.w(&format!("{name}.weight"));
        p.push_all(linear::forward(self.gpu, shape, x, w, bias, y)?);
        Ok(())
    }

    /// The bias of the linear layer `name`.
    pub fn bias(&self, name: &str) -> &Tensor {
        self.p(&format!("{name}.bias"))
    }
}

/// `out = norm(h) · (1 + scale) + shift`, shift and scale read from a
/// modulation tensor: the AdaLN prologue of every branch and of the final
/// layer, one kernel each way.
pub(super) struct ModulatedNorm {
    op: adaln::ModulatedNorm,
    /// (B·L, 2) each row's (μ, rstd).
    stats: Tensor,
    /// (B·L, d).
    pub out: Tensor,
}

impl ModulatedNorm {
    pub fn new(r: &Recorder, name: &str, shape: ModShape, at: ShiftScale) -> Result<Self> {
        let m = &r.config.model;
        Ok(ModulatedNorm {
            op: adaln::ModulatedNorm {
                shape,
                kind: m.norm,
                eps: m.norm_eps,
                at,
            },
            stats: r.zeros(&format!("{name}.stats"), &[r.rows, 2])?,
            out: r.zeros(&format!("{name}.out"), &[r.rows, r.d])?,
        })
    }

    pub fn forward(
        &self,
        r: &Recorder,
        modulation: &Tensor,
        h: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        p.push(
            self.op
                .forward(r.gpu, modulation, h, &self.out, &self.stats)?,
        );
        Ok(())
    }

    /// From d out in `bp.d_a`: `bp.dh` gets d h (overwritten or
    /// accumulated), d modulation the shift and scale's part.
    pub fn backward(
        &self,
        r: &Recorder,
        bp: &Backprop,
        modulations: (&Tensor, &Tensor),
        h: &Tensor,
        accumulate_dh: bool,
        p: &mut Program,
    ) -> Result<()> {
        p.push_all(self.op.backward(
            r.gpu,
            modulations,
            (h, &self.stats),
            &bp.d_a,
            &bp.dh,
            accumulate_dh,
        )?);
        Ok(())
    }
}

/// The backward's buffers: one gradient per parameter, and the gradients
/// that cross layer boundaries, shared by all blocks (they run one after
/// another, so one set serves them all).
pub(super) struct Backprop {
    pub grads: Packed,
    /// (B·L, d) the residual stream's gradient, from the final layer down.
    pub dh: Tensor,
    /// (B·L, d) scratch: a branch's output gradient, and what a layer passes down.
    pub d_a: Tensor,
    pub d_b: Tensor,
    /// (B, d) the conditioning silu(c): every AdaLN adds into it.
    pub d_cs: Tensor,
    /// (B·L, e) the noised input, from the input projection.
    pub d_x_t: Tensor,
    /// (B·L, e) the clean z0: the MSE target's part, then the noising's.
    pub d_z0: Tensor,
    /// (B·L, e) the denoiser's estimate: the MSE's part, then the logits'.
    pub d_z0_pred: Tensor,
    /// (B·L, V) from the cross-entropy.
    pub d_logits: Tensor,
    /// (V, e) Ê: the logits' part, then the embedding lookup's.
    pub d_e_hat: Tensor,
    /// Inside a block: (B, 6d) its modulation, (B·L, 3d) qkv, (B·L, 2·hidden)
    /// the FFN's first product and (B·L, hidden) its gated value.
    pub d_mod: Tensor,
    pub d_qkv: Tensor,
    pub d_f13: Tensor,
    pub d_sw: Tensor,
    /// (B, 2d) the final layer's modulation.
    pub d_final_mod: Tensor,
    /// (B, d) inside the timestep MLP.
    pub d_c: Tensor,
    pub d_c1s: Tensor,
    pub d_c1: Tensor,
}

impl Backprop {
    pub fn new(r: &Recorder) -> Result<Self> {
        let (rows, d, e, b) = (r.rows, r.d, r.e, r.options.batch);
        Ok(Backprop {
            grads: r.model.packed_like(r.gpu, "grad")?,
            dh: r.zeros("d.h", &[rows, d])?,
            d_a: r.zeros("d.a", &[rows, d])?,
            d_b: r.zeros("d.b", &[rows, d])?,
            d_cs: r.zeros("d.cs", &[b, d])?,
            d_x_t: r.zeros("d.x_t", &[rows, e])?,
            d_z0: r.zeros("d.z0", &[rows, e])?,
            d_z0_pred: r.zeros("d.z0_pred", &[rows, e])?,
            d_logits: r.zeros("d.logits", &[rows, r.vocab])?,
            d_e_hat: r.zeros("d.e_hat", &[r.vocab, e])?,
            d_mod: r.zeros("d.modulation", &[b, 6 * d])?,
            d_qkv: r.zeros("d.qkv", &[rows, 3 * d])?,
            d_f13: r.zeros("d.f13", &[rows, 2 * r.hidden])?,
            d_sw: r.zeros("d.sw", &[rows, r.hidden])?,
            d_final_mod: r.zeros("d.final.modulation", &[b, 2 * d])?,
            d_c: r.zeros("d.c", &[b, d])?,
            d_c1s: r.zeros("d.c1s", &[b, d])?,
            d_c1: r.zeros("d.c1", &[b, d])?,
        })
    }

    pub fn grad(&self, r: &Recorder, name: &str) -> &Tensor {
        &self.grads.tensors[r
            .model
            .specs
            .iter()
            .position(|s| s.name == name)
            .expect("known parameter")]
    }

    /// Back through the linear layer `name` applied to x: dW and db
    /// overwrite; dx (when asked for) overwrites or accumulates.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        r: &Recorder,
        p: &mut Program,
        rows: usize,
        (d_in, d_out): (usize, usize),
        x: &Tensor,
        name: &str,
        dy: &Tensor,
        dx: Option<(&Tensor, bool)>,
    ) -> Result<()> {
        let g = LinearGrads {
            dx: dx.map(|(t, _)| t),
            dw: self.grad(r, &format!("{name}.weight")),
            db: Some(self.grad(r, &format!("{name}.bias"))),
            accumulate_dx: dx.is_some_and(|(_, acc)| acc),
            accumulate_dw: false,
        };
        let shape = LinearShape { rows, d_in, d_out };
        let w = r.w(&format!("{name}.weight"));
        p.push_all(linear::backward(r.gpu, shape, x, w, dy, g)?);
        Ok(())
    }
}
