//! The step's update: one gradient-norm pass over the packed gradients, the
//! clip (or skip) factor, AdamW over each span of the packing (the
//! weight-decayed parameters, then the others, per chunk: two dispatches for
//! a model whose parameters fit one binding), and under mixed precision the
//! loss scale's adjustment. The padding between packed tensors is zero in
//! every buffer and stays zero: its gradient is zero, so AdamW leaves it.

use crate::Result;
use crate::gpu::{Program, Tensor};
use crate::ops::optim::{self, AdamW};

use super::recorder::{Backprop, Recorder};
use super::{Inputs, LOSS_SCALE_GROWTH_INTERVAL, OPTIM_SLOTS, OptimizerState};
use crate::model::DECAYED;

pub(super) fn record(
    r: &Recorder,
    inputs: &Inputs,
    bp: &Backprop,
    stats: &Tensor,
    state: &OptimizerState,
) -> Result<Program> {
    let (gpu, t) = (r.gpu, &r.config.train);
    let mut p = Program::new();
    let grads: Vec<&Tensor> = bp.grads.chunks.iter().collect();
    p.push_all(optim::grad_sumsq(gpu, &grads, stats, OPTIM_SLOTS)?);
    p.push(optim::clip_scale(gpu, stats, OPTIM_SLOTS, t.grad_clip)?);
    for span in &r.model.packing.spans {
        let h = AdamW {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.adam_eps,
            weight_decay: if span.group == DECAYED {
                t.weight_decay
            } else {
                0.0
            },
        };
        p.push(optim::adamw(
            gpu,
            h,
            OPTIM_SLOTS,
            stats,
            &inputs.step,
            &r.model.packed.span(span),
            &bp.grads.span(span),
            &state.m.span(span),
            &state.v.span(span),
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
