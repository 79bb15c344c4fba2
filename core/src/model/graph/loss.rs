//! gaussian: loss = mse_weight · mse(z0_pred, z0) + ce_weight · ce(logits, w),
//! both means over positions weighted by `inputs.weight` (0 excludes a
//! position, e.g. an instruction's prompt).
//! hybrid: loss = ce_weight · Σ_r weight_r · ce_r / (B·L), the weight 1/t at
//! a corrupted position and 0 elsewhere (MDLM's ELBO, normalised per
//! position rather than per weight); no MSE.
//! Forward into the step's stats, backward into the gradients of the
//! estimates (and, for gaussian, of the target).

use crate::Result;
use crate::config::DiffusionKind;
use crate::gpu::{Program, Tensor};
use crate::ops::loss::{self, LossShape};

use super::recorder::{Backprop, Recorder};
use super::{Inputs, LOSS_SLOTS, slot};

pub(super) struct Loss {
    /// (B·L) the logits' log-sum-exp, saved for the backward.
    lse: Tensor,
    mse_shape: LossShape,
    ce_shape: LossShape,
    /// gaussian; hybrid has no MSE and a fixed normaliser.
    gaussian: bool,
}

/// What the losses compare: the estimate, the clean target, the logits.
pub(super) struct LossOperands<'a> {
    pub z0_pred: &'a Tensor,
    pub z0: &'a Tensor,
    pub logits: &'a Tensor,
}

impl Loss {
    pub fn new(r: &Recorder) -> Result<Self> {
        Ok(Loss {
            lse: r.zeros("logits.lse", &[r.rows])?,
            mse_shape: LossShape {
                rows: r.rows,
                cols: r.e,
            },
            ce_shape: LossShape {
                rows: r.rows,
                cols: r.vocab,
            },
            gaussian: r.config.diffusion.kind == DiffusionKind::Gaussian,
        })
    }

    pub fn forward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        x: &LossOperands,
        stats: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        let (gpu, weight) = (r.gpu, &inputs.weight);
        if self.gaussian {
            p.push_all(loss::weight_sum(gpu, weight, stats, LOSS_SLOTS)?);
            p.push_all(loss::mse_forward(
                gpu,
                self.mse_shape,
                LOSS_SLOTS,
                x.z0_pred,
                x.z0,
                weight,
                stats,
                slot::MSE_SUM,
                slot::MSE,
            )?);
        } else {
            p.push(loss::fixed_weight_sum(
                gpu,
                r.rows as f32,
                stats,
                LOSS_SLOTS,
            )?);
        }
        p.push_all(loss::ce_forward(
            gpu,
            self.ce_shape,
            LOSS_SLOTS,
            x.logits,
            &inputs.tokens,
            weight,
            &self.lse,
            stats,
            slot::CE_SUM,
            slot::CE,
        )?);
        Ok(())
    }

    /// Overwrites `bp.d_logits` and, for gaussian, `bp.d_z0_pred` and `bp.d_z0`
    /// (the target's part).
    pub fn backward(
        &self,
        r: &Recorder,
        inputs: &Inputs,
        bp: &Backprop,
        x: &LossOperands,
        stats: &Tensor,
        p: &mut Program,
    ) -> Result<()> {
        let (gpu, diff, weight) = (r.gpu, &r.config.diffusion, &inputs.weight);
        if self.gaussian {
            p.push(loss::mse_backward(
                gpu,
                self.mse_shape,
                LOSS_SLOTS,
                diff.mse_weight,
                x.z0_pred,
                x.z0,
                weight,
                stats,
                &bp.d_z0_pred,
                &bp.d_z0,
            )?);
        }
        p.push(loss::ce_backward(
            gpu,
            self.ce_shape,
            LOSS_SLOTS,
            diff.ce_weight,
            x.logits,
            &inputs.tokens,
            weight,
            &self.lse,
            stats,
            &bp.d_logits,
        )?);
        Ok(())
    }
}
