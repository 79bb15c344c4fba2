//! The layers above the blocks, each a forward/backward pair: the final
//! AdaLN layer (z0_pred = out(norm(h)(1 + sc) + sh)) and the tied readout
//! (logits = α · z0_pred · Êᵀ, α = logit_scale / signal_scale for gaussian,
//! logit_scale for hybrid, whose output is compared with Ê itself; gaussian's
//! optional output prior adds the noisy input's own evidence).

use crate::Result;
use crate::config::DiffusionKind;
use crate::gpu::{Program, Tensor};
use crate::ops::adaln::ShiftScale;
use crate::ops::diffusion;
use crate::ops::matmul::{Matmul, matmul, matmul_split_k};

use super::Inputs;
use super::recorder::{Backprop, ModulatedNorm, Recorder};

pub(super) struct FinalLayer {
    /// (B, 2d) shift and scale.
    modulation: Tensor,
    norm: ModulatedNorm,
    /// (B·L, e) the denoiser's estimate of z0 = signal_scale · x0.
    pub z0_pred: Tensor,
}

impl FinalLayer {
    pub fn new(r: &Recorder) -> Result<Self> {
        let d = r.d;
        let at = ShiftScale { shift: 0, scale: d };
        Ok(FinalLayer {
            modulation: r.zeros("final.modulation", &[r.options.batch, 2 * d])?,
            norm: ModulatedNorm::new(r, "final", r.mod_shape(2 * d), at)?,
            z0_pred: r.zeros("z0_pred", &[r.rows, r.e])?,
        })
    }

    pub fn forward(&self, r: &Recorder, cs: &Tensor, h: &Tensor, p: &mut Program) -> Result<()> {
        let (b, rows, d) = (r.options.batch, r.rows, r.d);
        r.linear(p, b, (d, 2 * d), cs, "final.adaln", &self.modulation)?;
        self.norm.forward(r, &self.modulation, h, p)?;
        r.linear(
            p,
            rows,
            (d, r.e),
            &self.norm.out,
            "final.out",
            &self.z0_pred,
        )
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
        bp.linear(r, p, rows, (d, r.e), m, "final.out", &bp.d_z0_pred, d_a)?;
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
    /// gaussian with `diffusion.output_prior`: the readout.
    prior: Option<PriorReadout>,
}

/// Plaid's output prior: w · log N(x_t; a_b·S·Ê_v, s_b²) added to token v's
/// logit is (w·S·a_b/s_b²)·x_t·Ê_v plus terms equal for every v (|Ê_v|² is
/// e for every unit-RMS row, up to norm_eps), so the logits become
/// u·Êᵀ with u = α·z0_pred + β_b·x_t, one product as before.
struct PriorReadout {
    /// (B·L, e) u.
    u: Tensor,
    /// (B·L, e) its gradient (training graphs).
    d_u: Option<Tensor>,
}

impl Logits {
    pub fn new(r: &Recorder) -> Result<Self> {
        let diff = &r.config.diffusion;
        let gaussian = diff.kind == DiffusionKind::Gaussian;
        let prior = if gaussian && diff.output_prior > 0.0 {
            Some(PriorReadout {
                u: r.zeros("readout.u", &[r.rows, r.e])?,
                d_u: r.zeros_if(r.options.train, "d.readout.u", &[r.rows, r.e])?,
            })
        } else {
            None
        };
        Ok(Logits {
            logits: r.zeros("logits", &[r.rows, r.vocab])?,
            alpha: if gaussian {
                diff.logit_scale / diff.signal_scale
            } else {
                diff.logit_scale
            },
            add_to_d_z0_pred: gaussian,
            prior,
        })
    }

    /// Whether the logits read x_t too (the output prior): its gradient
    /// then already holds their part when the input layer's backward runs.
    pub fn reads_x_t(&self) -> bool {
        self.prior.is_some()
    }

    /// The vectors the logits compare with Ê, and their scale.
    fn readout<'a>(&'a self, z0_pred: &'a Tensor) -> (&'a Tensor, f32) {
        match &self.prior {
            Some(prior) => (&prior.u, 1.0),
            None => (z0_pred, self.alpha),
        }
    }

    pub fn forward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        (z0_pred, x_t): (&Tensor, &Tensor),
        e_hat: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        if let (Some(prior), Some(coef)) = (&self.prior, &inputs.readout) {
            let shape = r.embed_shape();
            p.push(diffusion::q_sample_forward(
                r.gpu, shape, coef, z0_pred, x_t, &prior.u,
            )?);
        }
        let (readout, alpha) = self.readout(z0_pred);
        let mm = Matmul::new(r.rows, r.vocab, r.e)
            .trans_b()
            .alpha(alpha)
            .half_operands(r.options.half_operands);
        p.push(matmul(r.gpu, readout, e_hat, &self.logits, mm)?);
        Ok(())
    }

    /// From `bp.d_logits`: adds into `bp.d_z0_pred` (overwrites it without an
    /// MSE), overwrites `bp.d_e_hat` (and, with the prior, `bp.d_x_t`).
    pub fn backward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        bp: &Backprop,
        (z0_pred, e_hat): (&Tensor, &Tensor),
        p: &mut Program,
    ) -> Result<()> {
        let half = r.options.half_operands;
        let (readout, alpha) = self.readout(z0_pred);
        let d_readout = match &self.prior {
            Some(PriorReadout { d_u: Some(d_u), .. }) => d_u,
            _ => &bp.d_z0_pred,
        };
        let mut dz = Matmul::new(r.rows, r.e, r.vocab)
            .alpha(alpha)
            .half_operands(half);
        if self.add_to_d_z0_pred && self.prior.is_none() {
            dz = dz.accumulate();
        }
        p.push(matmul(r.gpu, &bp.d_logits, e_hat, d_readout, dz)?);
        if let (Some(_), Some(coef)) = (&self.prior, &inputs.readout) {
            let dz0 = (&bp.d_z0_pred, self.add_to_d_z0_pred);
            p.push(diffusion::q_sample_backward_both(
                r.gpu,
                r.embed_shape(),
                coef,
                d_readout,
                dz0,
                &bp.d_x_t,
            )?);
        }
        let de = Matmul::new(r.vocab, r.e, r.rows)
            .trans_a()
            .alpha(alpha)
            .half_operands(half);
        p.push_all(matmul_split_k(
            r.gpu,
            &bp.d_logits,
            readout,
            &bp.d_e_hat,
            de,
        )?);
        Ok(())
    }
}
