//! The step's update: one gradient-norm pass over all parameters, the clip
//! (or skip) factor, AdamW per parameter, and under mixed precision the loss
//! scale's adjustment.

use crate::Result;
use crate::gpu::{Program, Tensor};
use crate::ops::optim::{self, AdamW};

use super::recorder::{Backprop, Recorder};
use super::{Inputs, LOSS_SCALE_GROWTH_INTERVAL, OPTIM_SLOTS, OptimizerState};

pub(super) fn record(
    r: &Recorder,
    inputs: &Inputs,
    bp: &Backprop,
    stats: &Tensor,
    state: &OptimizerState,
) -> Result<Program> {
    let (gpu, t) = (r.gpu, &r.config.train);
    let mut p = Program::new();
    let grads: Vec<&Tensor> = bp.grads.iter().collect();
    p.push_all(optim::grad_sumsq(gpu, &grads, stats, OPTIM_SLOTS)?);
    p.push(optim::clip_scale(gpu, stats, OPTIM_SLOTS, t.grad_clip)?);
    for (i, spec) in r.model.specs.iter().enumerate() {
        let h = AdamW {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.adam_eps,
            weight_decay: if spec.decay { t.weight_decay } else { 0.0 },
        };
        p.push(optim::adamw(
            gpu,
            h,
            OPTIM_SLOTS,
            stats,
            &inputs.step,
            &r.model.params[i],
            &bp.grads[i],
            &state.m[i],
            &state.v[i],
        )?);
    }
    if r.options.half_operands {
        p.push(optim::update_loss_scale(
            gpu,
            stats,
            OPTIM_SLOTS,
            LOSS_SCALE_GROWTH_INTERVAL,
        )?);
    }
    Ok(p)
}
