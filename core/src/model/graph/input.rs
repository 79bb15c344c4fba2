//! The layers below the blocks, each a forward/backward pair: the embedding
//! table, the noising of the clean sequence, the timestep MLP and the input
//! projection (with its self-conditioning half).

use crate::Result;
use crate::config::DiffusionKind;
use crate::gpu::{Program, Tensor};
use crate::model::params::MASK_EMBEDDING;
use crate::ops::activation::{silu_backward, silu_forward};
use crate::ops::diffusion::{self, SeqShape};
use crate::ops::elementwise::fill;
use crate::ops::embedding::{self, EmbeddingBackward};
use crate::ops::matmul::{Matmul, matmul, matmul_split_k};
use crate::ops::norm::{self, NormShape};
use crate::ops::random::randn;
use crate::ops::reduce::sum_rows;
use crate::ops::{precision, timestep};

use super::recorder::{Backprop, Recorder};
use super::{Inputs, NOISE_STREAM};

/// A parameter of unit-RMS rows: Ê = rmsnorm(E), the table both ends of the
/// model read, or (masked) the mask row m̂ = rmsnorm(M).
struct UnitRows {
    param: &'static str,
    /// (rows, e).
    hat: Tensor,
    /// (rows).
    rstd: Tensor,
}

impl UnitRows {
    fn new(r: &Recorder, param: &'static str, rows: usize) -> Result<Self> {
        Ok(UnitRows {
            param,
            hat: r.zeros(&format!("{param}.hat"), &[rows, r.e])?,
            rstd: r.zeros(&format!("{param}.rstd"), &[rows])?,
        })
    }

    fn shape(&self, r: &Recorder) -> NormShape {
        NormShape {
            rows: self.rstd.len(),
            cols: r.e,
            eps: r.config.model.norm_eps,
        }
    }

    fn forward(&self, r: &Recorder, p: &mut Program) -> Result<()> {
        let x = r.p(self.param);
        let shape = self.shape(r);
        p.push(norm::forward(r.gpu, shape, x, &self.hat, &self.rstd)?);
        Ok(())
    }

    fn backward(&self, r: &Recorder, bp: &Backprop, d_hat: &Tensor, p: &mut Program) -> Result<()> {
        let (x, dx) = (r.p(self.param), bp.grad(r, self.param));
        let shape = self.shape(r);
        p.push(norm::backward(r.gpu, shape, x, &self.rstd, d_hat, dx)?);
        Ok(())
    }
}

/// masked: the mask row and, in training, its gradient's two stages.
pub(super) struct MaskRow {
    row: UnitRows,
    /// (B·L, e) d_x_t at masked positions, 0 elsewhere.
    masked_rows: Option<Tensor>,
    /// (1, e) their column sums.
    d_hat: Option<Tensor>,
}

/// What the forward derives from the parameters before it reads any.
pub(super) struct EmbedTable {
    embedding: UnitRows,
    pub mask: Option<MaskRow>,
}

impl EmbedTable {
    pub fn new(r: &Recorder) -> Result<Self> {
        let mask = if r.config.diffusion.kind == DiffusionKind::Masked {
            let train = r.options.train;
            Some(MaskRow {
                row: UnitRows::new(r, MASK_EMBEDDING, 1)?,
                masked_rows: r.zeros_if(train, "mask.masked_rows", &[r.rows, r.e])?,
                d_hat: r.zeros_if(train, "mask.d_hat", &[1, r.e])?,
            })
        } else {
            None
        };
        Ok(EmbedTable {
            embedding: UnitRows::new(r, "embedding.weight", r.vocab)?,
            mask,
        })
    }

    /// (V, e) Ê.
    pub fn e_hat(&self) -> &Tensor {
        &self.embedding.hat
    }

    /// (1, e) m̂, the input of every masked position (masked kind).
    pub fn mask_hat(&self) -> Option<&Tensor> {
        self.mask.as_ref().map(|m| &m.row.hat)
    }

    /// Ê (and m̂), and under mixed precision every matmul weight's half copy.
    pub fn forward(&self, r: &Recorder, p: &mut Program) -> Result<()> {
        self.embedding.forward(r, p)?;
        if let Some(mask) = &self.mask {
            mask.row.forward(r, p)?;
        }
        for (name, copy) in &r.half_weights {
            p.push(precision::half_copy(r.gpu, r.p(name), copy)?);
        }
        Ok(())
    }

    /// From `bp.d_e_hat` (and the masked rows' gradient) into the parameters' gradients.
    pub fn backward(&self, r: &Recorder, bp: &Backprop, p: &mut Program) -> Result<()> {
        self.embedding.backward(r, bp, &bp.d_e_hat, p)?;
        if let Some(MaskRow {
            row,
            masked_rows: Some(rows),
            d_hat: Some(d_hat),
        }) = &self.mask
        {
            p.push_all(sum_rows(r.gpu, rows, d_hat, (1, r.rows, r.e), false)?);
            row.backward(r, bp, d_hat, p)?;
        }
        Ok(())
    }
}

/// gaussian: z0 = signal_scale · Ê[w];  x_t = a_t z0 + s_t eps (z0 itself
/// at known positions when they are held clean).
/// hybrid: z0 = Ê[w];  x_t = z0 at clean positions (`inputs.known` 1),
/// a z0 + s eps at corrupted ones, (a, s) = (1, sigma_t)/sqrt(1 + sigma_t²).
/// masked: z0 = Ê[w];  x_t = z0 at clean positions, m̂ at masked ones.
pub(super) struct Noising {
    /// (B·L, e) the clean target (the gaussian MSE's) and the input's signal.
    pub z0: Tensor,
    /// (B·L, e) the denoiser's input; the sampler writes it directly.
    pub x_t: Tensor,
    shape: SeqShape,
    kind: DiffusionKind,
    hold_known: bool,
    /// signal_scale for gaussian, 1 for masked and hybrid.
    scale: f32,
    /// Training graphs: the lookup's backward into Ê.
    embed_backward: Option<EmbeddingBackward>,
}

impl Noising {
    pub fn new(r: &Recorder) -> Result<Self> {
        let diffusion = &r.config.diffusion;
        let gaussian = diffusion.kind == DiffusionKind::Gaussian;
        Ok(Noising {
            z0: r.zeros("z0", &[r.rows, r.e])?,
            x_t: r.zeros("x_t", &[r.rows, r.e])?,
            shape: r.embed_shape(),
            kind: diffusion.kind,
            hold_known: diffusion.holds_known_clean(),
            scale: if gaussian {
                diffusion.signal_scale
            } else {
                1.0
            },
            embed_backward: r
                .options
                .train
                .then(|| EmbeddingBackward::new(r.gpu, (r.rows, r.vocab, r.e), "d.embedding"))
                .transpose()?,
        })
    }

    pub fn forward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        table: &EmbedTable,
        p: &mut Program,
    ) -> Result<()> {
        let gpu = r.gpu;
        p.push(embedding::forward(
            gpu,
            &inputs.tokens,
            table.e_hat(),
            self.scale,
            &self.z0,
        )?);
        if let Some(mask) = table.mask_hat() {
            let known = &inputs.known;
            p.push(diffusion::mask_forward(
                gpu, self.shape, mask, &self.z0, known, &self.x_t,
            )?);
            return Ok(());
        }
        if r.options.generate_noise {
            p.push(randn(
                gpu,
                &inputs.rng_key,
                NOISE_STREAM,
                1.0,
                // Training's keys start at sequence 0, so the batch is one sequence.
                (&inputs.noise, 1),
            )?);
        }
        let (coef, noise) = (&inputs.coef, &inputs.noise);
        p.push(if self.hold_known {
            diffusion::q_sample_held_forward(
                gpu,
                self.shape,
                coef,
                &self.z0,
                noise,
                &inputs.known,
                &self.x_t,
            )?
        } else {
            diffusion::q_sample_forward(gpu, self.shape, coef, &self.z0, noise, &self.x_t)?
        });
        Ok(())
    }

    /// From `bp.d_x_t` (and the gaussian target's part already in `bp.d_z0`)
    /// into `bp.d_e_hat` (and the mask row's masked rows).
    pub fn backward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        bp: &Backprop,
        table: &EmbedTable,
        p: &mut Program,
    ) -> Result<()> {
        let (gpu, coef, known) = (r.gpu, &inputs.coef, &inputs.known);
        // Only the gaussian MSE's target already holds a gradient.
        let add = self.kind == DiffusionKind::Gaussian;
        let masked_rows = table.mask.as_ref().and_then(|m| m.masked_rows.as_ref());
        p.push(match masked_rows {
            Some(rows) => {
                let dz0 = (&bp.d_z0, add);
                diffusion::mask_backward(gpu, self.shape, known, &bp.d_x_t, dz0, rows)?
            }
            None if self.hold_known => diffusion::q_sample_held_backward(
                gpu, self.shape, coef, known, &bp.d_x_t, &bp.d_z0, add,
            )?,
            None => diffusion::q_sample_backward(gpu, self.shape, coef, &bp.d_x_t, &bp.d_z0, add)?,
        });
        let lookup = self
            .embed_backward
            .as_ref()
            .expect("a training graph has the embedding's backward");
        p.push_all(lookup.record(gpu, &inputs.tokens, &bp.d_z0, self.scale, &bp.d_e_hat, true)?);
        Ok(())
    }
}

/// c = fc2(silu(fc1(sinusoid(t))));  cs = silu(c), what every AdaLN reads.
pub(super) struct TimeMlp {
    temb: Tensor,
    c1: Tensor,
    c1s: Tensor,
    c: Tensor,
    /// (B, d).
    pub cs: Tensor,
}

impl TimeMlp {
    pub fn new(r: &Recorder) -> Result<Self> {
        let (b, d) = (r.options.batch, r.d);
        Ok(TimeMlp {
            temb: r.zeros("temb", &[b, r.config.model.time_embed_dim])?,
            c1: r.zeros("c1", &[b, d])?,
            c1s: r.zeros("c1s", &[b, d])?,
            c: r.zeros("c", &[b, d])?,
            cs: r.zeros("cs", &[b, d])?,
        })
    }

    pub fn forward(&self, r: &Recorder, inputs: &Inputs, p: &mut Program) -> Result<()> {
        let (gpu, b, d) = (r.gpu, r.options.batch, r.d);
        let te = r.config.model.time_embed_dim;
        p.push(timestep::embedding(
            gpu,
            &inputs.timesteps,
            &r.timestep_table,
            &self.temb,
        )?);
        r.linear(p, b, (te, d), &self.temb, "time.fc1", &self.c1)?;
        p.push(silu_forward(gpu, &self.c1, &self.c1s)?);
        r.linear(p, b, (d, d), &self.c1s, "time.fc2", &self.c)?;
        p.push(silu_forward(gpu, &self.c, &self.cs)?);
        Ok(())
    }

    /// From `bp.d_cs` (summed over every AdaLN) into the MLP's weights.
    pub fn backward(&self, r: &Recorder, bp: &Backprop, p: &mut Program) -> Result<()> {
        let (gpu, b, d) = (r.gpu, r.options.batch, r.d);
        let te = r.config.model.time_embed_dim;
        p.push(silu_backward(gpu, &self.c, &bp.d_cs, &bp.d_c)?);
        let d_c1s = Some((&bp.d_c1s, false));
        bp.linear(r, p, b, (d, d), &self.c1s, "time.fc2", &bp.d_c, d_c1s)?;
        p.push(silu_backward(gpu, &self.c1, &bp.d_c1s, &bp.d_c1)?);
        bp.linear(r, p, b, (te, d), &self.temb, "time.fc1", &bp.d_c1, None)
    }
}

/// h0 = input(x_t) (+ W_sc · sc under self-conditioning, sc a previous
/// estimate of z0 or zeros).
pub(super) struct InputLayer {
    /// (B·L, e) the self-conditioning input.
    pub sc: Tensor,
    self_condition: bool,
}

impl InputLayer {
    pub fn new(r: &Recorder) -> Result<Self> {
        Ok(InputLayer {
            sc: r.zeros("sc", &[r.rows, r.e])?,
            self_condition: r.config.diffusion.self_condition,
        })
    }

    pub fn forward(&self, r: &Recorder, x_t: &Tensor, h0: &Tensor, p: &mut Program) -> Result<()> {
        let (rows, d, e) = (r.rows, r.d, r.e);
        r.linear(p, rows, (e, d), x_t, "input", h0)?;
        if self.self_condition {
            let mm = Matmul::new(rows, d, e)
                .trans_b()
                .accumulate()
                .half_operands(r.options.half_operands);
            p.push(matmul(r.gpu, &self.sc, r.w("input_sc.weight"), h0, mm)?);
        }
        Ok(())
    }

    /// From `bp.dh` into `bp.d_x_t` (overwritten, or added to the logits'
    /// part when they read x_t) and the weights.
    pub fn backward(
        &self,
        r: &Recorder,
        bp: &Backprop,
        (x_t, add_to_d_x_t): (&Tensor, bool),
        p: &mut Program,
    ) -> Result<()> {
        let (rows, d, e) = (r.rows, r.d, r.e);
        let d_x_t = Some((&bp.d_x_t, add_to_d_x_t));
        bp.linear(r, p, rows, (e, d), x_t, "input", &bp.dh, d_x_t)?;
        if self.self_condition {
            // The estimate fed back is detached: only the weight learns.
            let mm = Matmul::new(d, e, rows)
                .trans_a()
                .half_operands(r.options.half_operands);
            let dw = bp.grad(r, "input_sc.weight");
            p.push_all(matmul_split_k(r.gpu, &bp.dh, &self.sc, dw, mm)?);
        }
        Ok(())
    }

    /// Self-conditioning: zero `sc` before a first pass ...
    pub fn clear(&self, r: &Recorder) -> Result<Program> {
        let mut p = Program::new();
        if self.self_condition {
            p.push(fill(r.gpu, &self.sc, 0.0)?);
        }
        Ok(p)
    }

    /// ... and set it to that pass's estimate, for the sequences whose
    /// `sc_mask` is 1: sc = mask[b] · z0_pred (q_sample with coefficients (mask, 0)).
    pub fn capture(&self, r: &Recorder, inputs: &Inputs, z0_pred: &Tensor) -> Result<Program> {
        let mut p = Program::new();
        if self.self_condition {
            p.push(diffusion::q_sample_forward(
                r.gpu,
                r.embed_shape(),
                &inputs.sc_mask,
                z0_pred,
                &inputs.noise,
                &self.sc,
            )?);
        }
        Ok(p)
    }
}
