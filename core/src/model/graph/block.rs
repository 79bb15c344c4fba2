//! One DiT block as a forward/backward pair:
//!   [sh1 sc1 g1 sh2 sc2 g2] = adaln(cs)
//!   h_mid = h_in + g1 · out(attn(norm(h_in)(1 + sc1) + sh1))
//!   h_out = h_mid + g2 · w2(swiglu(w13(norm(h_mid)(1 + sc2) + sh2)))
//! with dropout on each branch in training.

use crate::Result;
use crate::config::HeadKind;
use crate::gpu::{Program, Tensor};
use crate::ops::activation::{swiglu_backward, swiglu_forward};
use crate::ops::adaln::{Gate, ModShape, ShiftScale};
use crate::ops::attention::AttnShape;
use crate::ops::attention_linear::LinearAttention;
use crate::ops::attention_softmax::{SoftmaxAttention, Span};
use crate::ops::attention_topk::TopkAttention;
use crate::ops::elementwise::axpby;
use crate::ops::random::{dropout_backward, dropout_forward};
use crate::ops::rope;

use super::recorder::{Backprop, ModulatedNorm, Recorder};
use super::{Inputs, dropout_stream};

enum HeadGroupKernel {
    Linear(LinearAttention),
    Topk(TopkAttention),
    Softmax(SoftmaxAttention),
}

/// Consecutive heads of one kind, computed by one kernel.
struct HeadGroup {
    shape: AttnShape,
    rope: bool,
    kernel: HeadGroupKernel,
}

impl HeadGroup {
    /// The layer's head groups in the order of the config's head mix.
    fn all(r: &Recorder, layer: usize) -> Result<Vec<HeadGroup>> {
        let m = &r.config.model;
        let mut groups = Vec::new();
        let mut start = 0;
        for (gi, g) in m.head_mix.iter().enumerate().filter(|(_, g)| g.count > 0) {
            let shape = AttnShape {
                batch: r.options.batch,
                seq: r.options.seq,
                n_heads: m.n_heads,
                head_dim: r.config.head_dim(),
                head_start: start,
                head_count: g.count,
            };
            let name = format!("blocks.{layer}.attn.group{gi}");
            let gpu = r.gpu;
            let kernel = match g.kind {
                HeadKind::Linear => HeadGroupKernel::Linear(LinearAttention::new(
                    gpu,
                    shape,
                    m.linear_attn_eps,
                    &name,
                )?),
                HeadKind::Topk => {
                    HeadGroupKernel::Topk(TopkAttention::new(gpu, shape, m.topk, &name)?)
                }
                HeadKind::Window => HeadGroupKernel::Softmax(SoftmaxAttention::new(
                    gpu,
                    shape,
                    Span::HalfWindow(m.window / 2),
                    &name,
                )?),
                HeadKind::Full => {
                    HeadGroupKernel::Softmax(SoftmaxAttention::new(gpu, shape, Span::Full, &name)?)
                }
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

    /// RoPE on this group's q and k (in place in qkv), then its heads of `att`.
    fn forward(&self, r: &Recorder, qkv: &Tensor, att: &Tensor, p: &mut Program) -> Result<()> {
        let gpu = r.gpu;
        if self.rope {
            p.push(rope::forward(gpu, self.shape, r.rope_tables(), qkv)?);
        }
        match &self.kernel {
            HeadGroupKernel::Linear(k) => p.push_all(k.forward(gpu, qkv, att)?),
            HeadGroupKernel::Topk(k) => p.push(k.forward(gpu, qkv, att)?),
            HeadGroupKernel::Softmax(k) => p.push(k.forward(gpu, qkv, att)?),
        }
        Ok(())
    }

    /// From d att into this group's columns of d qkv (before RoPE).
    fn backward(
        &self,
        r: &Recorder,
        (qkv, att): (&Tensor, &Tensor),
        d_att: &Tensor,
        d_qkv: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        let gpu = r.gpu;
        match &self.kernel {
            HeadGroupKernel::Linear(k) => p.push_all(k.backward(gpu, qkv, att, d_att, d_qkv)?),
            HeadGroupKernel::Topk(k) => p.push_all(k.backward(gpu, qkv, d_att, d_qkv)?),
            HeadGroupKernel::Softmax(k) => p.push_all(k.backward(gpu, qkv, att, d_att, d_qkv)?),
        }
        if self.rope {
            p.push(rope::backward(gpu, self.shape, r.rope_tables(), d_qkv)?);
        }
        Ok(())
    }
}

/// A residual branch's end: h_out = h_in + g · dropout(x·Wᵀ + b) for the
/// branch's output layer, g a column block of the modulation. Without
/// dropout the gate kernel adds the bias (one pass over y fewer).
struct GatedBranch {
    /// The output layer's name.
    layer: String,
    /// Its (d_in, d_out).
    dims: (usize, usize),
    /// (B·L, d) its product x·Wᵀ, plus b with dropout.
    y: Tensor,
    /// (B·L, d) y after dropout (training with dropout only).
    dropped: Option<Tensor>,
    gate: Gate,
    stream: u32,
}

impl GatedBranch {
    fn new(r: &Recorder, layer: String, d_in: usize, gate: usize, stream: u32) -> Result<Self> {
        let shape = [r.rows, r.d];
        let dropout = r.options.dropout && r.config.model.dropout > 0.0;
        Ok(GatedBranch {
            y: r.zeros(&format!("{layer}.y"), &shape)?,
            dropped: r.zeros_if(dropout, &format!("{layer}.dropped"), &shape)?,
            layer,
            dims: (d_in, r.d),
            gate: Gate {
                shape: mod_shape(r),
                offset: gate,
            },
            stream,
        })
    }

    /// What the gate multiplies: y after dropout, or y and the bias it lacks.
    fn gated<'a>(&'a self, r: &'a Recorder) -> (&'a Tensor, Option<&'a Tensor>) {
        match &self.dropped {
            Some(t) => (t, None),
            None => (&self.y, Some(r.bias(&self.layer))),
        }
    }

    fn forward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        modulation: &Tensor,
        x: &Tensor,
        (h_in, h_out): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let gpu = r.gpu;
        if let Some(t) = &self.dropped {
            r.linear(p, r.rows, self.dims, x, &self.layer, &self.y)?;
            let rate = r.config.model.dropout;
            p.push(dropout_forward(
                gpu,
                &inputs.rng_key,
                self.stream,
                rate,
                &self.y,
                t,
            )?);
        } else {
            r.linear_product(p, r.rows, self.dims, x, &self.layer, &self.y)?;
        }
        p.push(
            self.gate
                .forward(gpu, modulation, self.gated(r), (h_in, h_out))?,
        );
        Ok(())
    }

    /// From `bp.dh` (left as it is: the skip path's part): the gate's part
    /// of `bp.d_mod`, the output layer's gradients, and d x into `dx`
    /// (overwritten); `bp.d_a` and `bp.d_b` are scratch.
    fn backward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        bp: &Backprop,
        modulation: &Tensor,
        (x, dx): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let gpu = r.gpu;
        let modulations = (modulation, &bp.d_mod);
        p.push(
            self.gate
                .backward(gpu, modulations, self.gated(r), &bp.dh, &bp.d_a)?,
        );
        if self.dropped.is_some() {
            let rate = r.config.model.dropout;
            let key = &inputs.rng_key;
            p.push(dropout_backward(
                gpu,
                key,
                self.stream,
                rate,
                &bp.d_a,
                &bp.d_b,
            )?);
            p.push(axpby(gpu, 1.0, &bp.d_b, 0.0, &bp.d_a)?);
        }
        let dx = Some((dx, false));
        bp.linear(r, p, r.rows, self.dims, x, &self.layer, &bp.d_a, dx)
    }
}

/// The block's modulation: six (B, d) column blocks per sequence.
fn mod_shape(r: &Recorder) -> ModShape {
    r.mod_shape(6 * r.d)
}

/// Saved activations of one block; its input and output are residual-stream
/// tensors owned by the graph.
pub(super) struct Block {
    layer: usize,
    /// (B, 6d).
    modulation: Tensor,
    attn_norm: ModulatedNorm,
    /// (B·L, 3d).
    qkv: Tensor,
    /// (B·L, d) the heads' outputs, concatenated.
    att: Tensor,
    attn: GatedBranch,
    /// (B·L, d) the residual stream between the branches.
    h_mid: Tensor,
    ffn_norm: ModulatedNorm,
    /// (B·L, 2·hidden) W1 x and W3 x side by side, before their bias (the
    /// SwiGLU kernel adds it).
    f13: Tensor,
    /// (B·L, hidden) silu(W1 x) ⊙ W3 x.
    sw: Tensor,
    ffn: GatedBranch,
    heads: Vec<HeadGroup>,
}

impl Block {
    pub fn new(r: &Recorder, layer: usize) -> Result<Self> {
        let (rows, d) = (r.rows, r.d);
        let n = |s: &str| format!("blocks.{layer}.{s}");
        let ms = mod_shape(r);
        let attn_at = ShiftScale { shift: 0, scale: d };
        let ffn_at = ShiftScale {
            shift: 3 * d,
            scale: 4 * d,
        };
        Ok(Block {
            layer,
            modulation: r.zeros(&n("modulation"), &[r.options.batch, 6 * d])?,
            attn_norm: ModulatedNorm::new(r, &n("norm1"), ms, attn_at)?,
            qkv: r.zeros(&n("qkv"), &[rows, 3 * d])?,
            att: r.zeros(&n("att"), &[rows, d])?,
            attn: GatedBranch::new(r, n("attn.out"), d, 2 * d, dropout_stream(layer, 0))?,
            h_mid: r.zeros(&n("h_mid"), &[rows, d])?,
            ffn_norm: ModulatedNorm::new(r, &n("norm2"), ms, ffn_at)?,
            f13: r.zeros(&n("f13"), &[rows, 2 * r.hidden])?,
            sw: r.zeros(&n("sw"), &[rows, r.hidden])?,
            ffn: GatedBranch::new(r, n("ffn.w2"), r.hidden, 5 * d, dropout_stream(layer, 1))?,
            heads: HeadGroup::all(r, layer)?,
        })
    }

    fn name(&self, s: &str) -> String {
        format!("blocks.{}.{s}", self.layer)
    }

    /// h_out from h_in, conditioned on cs.
    pub fn forward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        cs: &Tensor,
        (h_in, h_out): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let (b, rows, d, hidden) = (r.options.batch, r.rows, r.d, r.hidden);
        let n = |s: &str| self.name(s);
        let modulation = &self.modulation;
        r.linear(p, b, (d, 6 * d), cs, &n("adaln"), modulation)?;
        self.attn_norm.forward(r, modulation, h_in, p)?;
        let m1 = &self.attn_norm.out;
        r.linear(p, rows, (d, 3 * d), m1, &n("attn.qkv"), &self.qkv)?;
        for g in &self.heads {
            g.forward(r, &self.qkv, &self.att, p)?;
        }
        let h_mid = &self.h_mid;
        self.attn
            .forward(r, inputs, modulation, &self.att, (h_in, h_mid), p)?;
        self.ffn_norm.forward(r, modulation, h_mid, p)?;
        let (m2, w13) = (&self.ffn_norm.out, n("ffn.w13"));
        r.linear_product(p, rows, (d, 2 * hidden), m2, &w13, &self.f13)?;
        let f13 = (&self.f13, r.bias(&w13));
        p.push(swiglu_forward(r.gpu, hidden, f13, &self.sw)?);
        self.ffn
            .forward(r, inputs, modulation, &self.sw, (h_mid, h_out), p)
    }

    /// From d h_out in `bp.dh` to d h_in in `bp.dh`; adds into `bp.d_cs`.
    pub fn backward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        bp: &Backprop,
        (cs, h_in): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let (b, rows, d, hidden) = (r.options.batch, r.rows, r.d, r.hidden);
        let n = |s: &str| self.name(s);
        let modulation = &self.modulation;
        let modulations = (modulation, &bp.d_mod);
        self.ffn
            .backward(r, inputs, bp, modulation, (&self.sw, &bp.d_sw), p)?;
        let (w13, d_f13) = (n("ffn.w13"), &bp.d_f13);
        let f13 = (&self.f13, r.bias(&w13));
        p.push(swiglu_backward(r.gpu, hidden, f13, &bp.d_sw, d_f13)?);
        let (m2, d_a) = (&self.ffn_norm.out, Some((&bp.d_a, false)));
        bp.linear(r, p, rows, (d, 2 * hidden), m2, &w13, d_f13, d_a)?;
        self.ffn_norm
            .backward(r, bp, modulations, &self.h_mid, true, p)?;

        self.attn
            .backward(r, inputs, bp, modulation, (&self.att, &bp.d_b), p)?;
        for g in &self.heads {
            g.backward(r, (&self.qkv, &self.att), &bp.d_b, &bp.d_qkv, p)?;
        }
        let (m1, d_a) = (&self.attn_norm.out, Some((&bp.d_a, false)));
        bp.linear(r, p, rows, (d, 3 * d), m1, &n("attn.qkv"), &bp.d_qkv, d_a)?;
        self.attn_norm.backward(r, bp, modulations, h_in, true, p)?;
        let d_cs = Some((&bp.d_cs, true));
        bp.linear(r, p, b, (d, 6 * d), cs, &n("adaln"), &bp.d_mod, d_cs)
    }
}
