use super::reduce::{SumAll, sum_all};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("optim");

/// Slots of the optimizer's scalars in `stats`.
#[derive(Clone, Copy, Debug)]
pub struct OptimSlots {
    pub sumsq: usize,
    pub norm: usize,
    pub factor: usize,
    pub skip: usize,
    pub skipped: usize,
    pub loss_scale: usize,
    pub clean_steps: usize,
}

/// AdamW hyper-parameters that are fixed for a run (lr and the bias
/// corrections change every step and come from the `step` tensor).
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

fn words(n: usize, h: AdamW, max_norm: f32, growth_interval: u32, s: OptimSlots) -> Vec<u32> {
    params![
        n,
        h.beta1,
        h.beta2,
        h.eps,
        h.weight_decay,
        max_norm,
        growth_interval,
        s.sumsq,
        s.norm,
        s.factor,
        s.skip,
        s.skipped,
        s.loss_scale,
        s.clean_steps,
    ]
}

const NO_ADAM: AdamW = AdamW {
    beta1: 0.0,
    beta2: 0.0,
    eps: 0.0,
    weight_decay: 0.0,
};

/// `stats[sumsq] = Σ_tensors Σ g²`, in a fixed order.
pub fn grad_sumsq(
    gpu: &Gpu,
    grads: &[&Tensor],
    stats: &Tensor,
    slots: OptimSlots,
) -> Result<Vec<Dispatch>> {
    let mut out = Vec::new();
    for (i, g) in grads.iter().enumerate() {
        out.extend(sum_all(
            gpu,
            g,
            stats,
            SumAll {
                square: true,
                out_index: slots.sumsq,
                accumulate: i > 0,
                ..Default::default()
            },
        )?);
    }
    Ok(out)
}

/// Norm, clip factor and skip flag from `stats[sumsq]`; `max_norm` 0 disables clipping.
pub fn clip_scale(gpu: &Gpu, stats: &Tensor, slots: OptimSlots, max_norm: f32) -> Result<Dispatch> {
    gpu.call(&SHADER, "clip_scale")
        .params(words(0, NO_ADAM, max_norm, 0, slots))
        .bind(1, stats)
        .dispatch([1, 1, 1])
}

/// One AdamW update of `param` from `grad`, unless the step is flagged to skip.
#[allow(clippy::too_many_arguments)]
pub fn adamw(
    gpu: &Gpu,
    h: AdamW,
    slots: OptimSlots,
    stats: &Tensor,
    step: &Tensor,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<Dispatch> {
    let n = param.len();
    if [grad, m, v].iter().any(|t| t.len() != n) || step.len() != 3 {
        return Err(Error::shape(
            "adamw",
            format!(
                "'{}' {:?} with grad {:?}, m {:?}, v {:?}, step {:?}",
                param.name(),
                param.shape(),
                grad.shape(),
                m.shape(),
                v.shape(),
                step.shape()
            ),
        ));
    }
    gpu.call(&SHADER, "adamw")
        .params(words(n, h, 0.0, 0, slots))
        .bind(2, stats)
        .bind(3, step)
        .bind(4, param)
        .bind(5, grad)
        .bind(6, m)
        .bind(7, v)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// Dynamic loss scaling (f16): halve on overflow, double after `growth_interval` clean steps.
pub fn update_loss_scale(
    gpu: &Gpu,
    stats: &Tensor,
    slots: OptimSlots,
    growth_interval: u32,
) -> Result<Dispatch> {
    gpu.call(&SHADER, "update_loss_scale")
        .params(words(0, NO_ADAM, 0.0, growth_interval, slots))
        .bind(1, stats)
        .dispatch([1, 1, 1])
}
