//! The layers above the blocks, each a forward/backward pair: the final
//! AdaLN layer (z0_pred = out(norm(h)(1 + sc) + sh)) and the tied readout
//! (logits = α · z0_pred · Êᵀ, α = logit_scale / signal_scale for gaussian,
//! logit_scale for hybrid, whose output is compared with Ê itself).

use crate::Result;
use crate::config::DiffusionKind;
use crate::gpu::{Program, Tensor};
use crate::ops::adaln::ShiftScale;
use crate::ops::matmul::{Matmul, matmul, matmul_split_k};

use super::recorder::{Backprop, ModulatedNorm, Recorder};

pub(super) struct FinalLayer {
    /// (B, 2d) shift and scale.
    modulation: Tensor,
    norm: ModulatedNorm,
    /// (B·L, d) the denoiser's estimate of z0 = signal_scale · x0.
    pub z0_pred: Tensor,
}

impl FinalLayer {
    pub fn new(r: &Recorder) -> Result<Self> {
        let d = r.d;
        let at = ShiftScale { shift: 0, scale: d };
        Ok(FinalLayer {
            modulation: r.zeros("final.modulation", &[r.options.batch, 2 * d])?,
            norm: ModulatedNorm::new(r, "final", r.mod_shape(2 * d), at)?,
            z0_pred: r.zeros("z0_pred", &[r.rows, d])?,
        })
    }

    pub fn forward(&self, r: &Recorder, cs: &Tensor, h: &Tensor, p: &mut Program) -> Result<()> {
        let (b, rows, d) = (r.options.batch, r.rows, r.d);
        r.linear(p, b, (d, 2 * d), cs, "final.adaln", &self.modulation)?;
        self.norm.forward(r, &self.modulation, h, p)?;
        r.linear(p, rows, (d, d), &self.norm.out, "final.out", &self.z0_pred)
    }

    /// From `bp.d_z0_pred`: d h overwrites `bp.dh`, d cs overwrites `bp.d_cs`.
    pub fn backward(
        &self,
        r: &Recorder,
        bp: &Backprop,
        (cs, h): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let (b, rows, d) = (r.options.batch, r.rows, r.d);
        let m = &self.norm.out;
        let d_a = Some((&bp.d_a, false));
        bp.linear(r, p, rows, (d, d), m, "final.out", &bp.d_z0_pred, d_a)?;
        let d_mod = &bp.d_final_mod;
        self.norm
            .backward(r, bp, (&self.modulation, d_mod), h, false, p)?;
        let d_cs = Some((&bp.d_cs, false));
        bp.linear(r, p, b, (d, 2 * d), cs, "final.adaln", d_mod, d_cs)
    }
}

pub(super) struct Logits {
    /// (B·L, V).
    pub logits: Tensor,
    alpha: f32,
    /// Whether `bp.d_z0_pred` already holds the MSE's part (gaussian).
    add_to_d_z0_pred: bool,
}

impl Logits {
    pub fn new(r: &Recorder) -> Result<Self> {
        let diff = &r.config.diffusion;
        let gaussian = diff.kind == DiffusionKind::Gaussian;
        Ok(Logits {
            logits: r.zeros("logits", &[r.rows, r.vocab])?,
            alpha: if gaussian {
                diff.logit_scale / diff.signal_scale
            } else {
                diff.logit_scale
            },
            add_to_d_z0_pred: gaussian,
        })
    }

    pub fn forward(
        &self,
        r: &Recorder,
        z0_pred: &Tensor,
        e_hat: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        let mm = Matmul::new(r.rows, r.vocab, r.d)
            .trans_b()
            .alpha(self.alpha)
            .half_operands(r.options.half_operands);
        p.push(matmul(r.gpu, z0_pred, e_hat, &self.logits, mm)?);
        Ok(())
    }

    /// From `bp.d_logits`: adds into `bp.d_z0_pred` (overwrites it without an
    /// MSE), overwrites `bp.d_e_hat`.
    pub fn backward(
        &self,
        r: &Recorder,
        bp: &Backprop,
        (z0_pred, e_hat): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let half = r.options.half_operands;
        let mut dz = Matmul::new(r.rows, r.d, r.vocab)
            .alpha(self.alpha)
            .half_operands(half);
        if self.add_to_d_z0_pred {
            dz = dz.accumulate();
        }
        p.push(matmul(r.gpu, &bp.d_logits, e_hat, &bp.d_z0_pred, dz)?);
        let de = Matmul::new(r.vocab, r.d, r.rows)
            .trans_a()
            .alpha(self.alpha)
            .half_operands(half);
        p.push_all(matmul_split_k(
            r.gpu,
            &bp.d_logits,
            z0_pred,
            &bp.d_e_hat,
            de,
        )?);
        Ok(())
    }
}
