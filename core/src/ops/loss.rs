use super::reduce::{SumAll, sum_all};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("loss");

/// Where the losses find their shared scalars in `stats`.
#[derive(Clone, Copy, Debug)]
pub struct LossSlots {
    /// Σ weight, written by [`weight_sum`].
    pub weight_sum: usize,
    /// The dynamic loss scale (1 in f32 training).
    pub loss_scale: usize,
}

/// A loss over `rows` positions of width `cols` (d for MSE, V for CE).
#[derive(Clone, Copy, Debug)]
pub struct LossShape {
    pub rows: usize,
    pub cols: usize,
}

fn words(
    s: LossShape,
    slots: LossSlots,
    loss_weight: f32,
    num_slot: usize,
    out_slot: usize,
    divisor: f32,
) -> Vec<u32> {
    params![
        s.rows,
        s.cols,
        slots.weight_sum,
        slots.loss_scale,
        loss_weight,
        num_slot,
        out_slot,
        divisor
    ]
}

fn check(op: &'static str, s: LossShape, matrices: &[&Tensor], rows: &[&Tensor]) -> Result<()> {
    let bad = matrices
        .iter()
        .find(|t| t.len() != s.rows * s.cols)
        .or(rows.iter().find(|t| t.len() != s.rows));
    if let Some(t) = bad {
        return Err(Error::shape(
            op,
            format!("'{}' {:?} for {s:?}", t.name(), t.shape()),
        ));
    }
    Ok(())
}

/// `stats[weight_sum] = Σ weight`.
pub fn weight_sum(
    gpu: &Gpu,
    weight: &Tensor,
    stats: &Tensor,
    slots: LossSlots,
) -> Result<Vec<Dispatch>> {
    sum_all(
        gpu,
        weight,
        stats,
        SumAll {
            out_index: slots.weight_sum,
            ..Default::default()
        },
    )
}

/// `stats[weight_sum] = value`: the losses then normalise by a fixed count
/// (say B·L) instead of Σ weight.
pub fn fixed_weight_sum(
    gpu: &Gpu,
    value: f32,
    stats: &Tensor,
    slots: LossSlots,
) -> Result<Dispatch> {
    let shape = LossShape { rows: 1, cols: 1 };
    gpu.call(&SHADER, "set_weight_sum")
        .params(words(shape, slots, 0.0, 0, 0, value))
        .bind(5, stats)
        .dispatch([1, 1, 1])
}

/// Row sums into `stats[num_slot]`, then `stats[out_slot] = num / (divisor·W)`.
#[allow(clippy::too_many_arguments)]
fn reduce_rows(
    gpu: &Gpu,
    s: LossShape,
    slots: LossSlots,
    row_loss: &Tensor,
    stats: &Tensor,
    num_slot: usize,
    out_slot: usize,
    divisor: f32,
) -> Result<Vec<Dispatch>> {
    let mut out = sum_all(
        gpu,
        row_loss,
        stats,
        SumAll {
            out_index: num_slot,
            ..Default::default()
        },
    )?;
    out.push(
        gpu.call(&SHADER, "normalize")
            .params(words(s, slots, 1.0, num_slot, out_slot, divisor))
            .bind(5, stats)
            .dispatch([1, 1, 1])?,
    );
    Ok(out)
}

/// `stats[out_slot]` = weighted mean squared error (per element); uses `num_slot` as scratch.
#[allow(clippy::too_many_arguments)]
pub fn mse_forward(
    gpu: &Gpu,
    s: LossShape,
    slots: LossSlots,
    pred: &Tensor,
    target: &Tensor,
    weight: &Tensor,
    stats: &Tensor,
    num_slot: usize,
    out_slot: usize,
) -> Result<Vec<Dispatch>> {
    check("mse", s, &[pred, target], &[weight])?;
    let row_loss = gpu.zeros("mse.rows", &[s.rows], DType::F32)?;
    let mut out = vec![
        gpu.call(&SHADER, "mse_rows")
            .params(words(s, slots, 1.0, 0, 0, 1.0))
            .bind(1, pred)
            .bind(2, target)
            .bind(3, weight)
            .bind(4, &row_loss)
            .dispatch(grid_1d(s.rows.div_ceil(256)))?,
    ];
    out.extend(reduce_rows(
        gpu,
        s,
        slots,
        &row_loss,
        stats,
        num_slot,
        out_slot,
        s.cols as f32,
    )?);
    Ok(out)
}

/// `dpred = loss_weight·scale·∂mse/∂pred`, `dtarget = −dpred` (overwrite).
#[allow(clippy::too_many_arguments)]
pub fn mse_backward(
    gpu: &Gpu,
    s: LossShape,
    slots: LossSlots,
    loss_weight: f32,
    pred: &Tensor,
    target: &Tensor,
    weight: &Tensor,
    stats: &Tensor,
    dpred: &Tensor,
    dtarget: &Tensor,
) -> Result<Dispatch> {
    check(
        "mse backward",
        s,
        &[pred, target, dpred, dtarget],
        &[weight],
    )?;
    gpu.call(&SHADER, "mse_backward")
        .params(words(s, slots, loss_weight, 0, 0, 1.0))
        .bind(1, pred)
        .bind(2, target)
        .bind(3, weight)
        .bind(5, stats)
        .bind(6, dpred)
        .bind(7, dtarget)
        .dispatch(grid_1d((s.rows * s.cols).div_ceil(256)))
}

/// `stats[out_slot]` = weighted mean cross-entropy; saves `lse` (rows) for the backward.
#[allow(clippy::too_many_arguments)]
pub fn ce_forward(
    gpu: &Gpu,
    s: LossShape,
    slots: LossSlots,
    logits: &Tensor,
    targets: &Tensor,
    weight: &Tensor,
    lse: &Tensor,
    stats: &Tensor,
    num_slot: usize,
    out_slot: usize,
) -> Result<Vec<Dispatch>> {
    check("cross-entropy", s, &[logits], &[targets, weight, lse])?;
    let row_loss = gpu.zeros("ce.rows", &[s.rows], DType::F32)?;
    let mut out = vec![
        gpu.call(&SHADER, "ce_rows")
            .params(words(s, slots, 1.0, 0, 0, 1.0))
            .bind(1, logits)
            .bind(3, weight)
            .bind(4, &row_loss)
            .bind(8, targets)
            .bind(9, lse)
            .dispatch(grid_1d(s.rows))?,
    ];
    out.extend(reduce_rows(
        gpu, s, slots, &row_loss, stats, num_slot, out_slot, 1.0,
    )?);
    Ok(out)
}

/// `dlogits = loss_weight·scale·∂ce/∂logits` (overwrite).
#[allow(clippy::too_many_arguments)]
pub fn ce_backward(
    gpu: &Gpu,
    s: LossShape,
    slots: LossSlots,
    loss_weight: f32,
    logits: &Tensor,
    targets: &Tensor,
    weight: &Tensor,
    lse: &Tensor,
    stats: &Tensor,
    dlogits: &Tensor,
) -> Result<Dispatch> {
    check(
        "cross-entropy backward",
        s,
        &[logits, dlogits],
        &[targets, weight, lse],
    )?;
    gpu.call(&SHADER, "ce_backward")
        .params(words(s, slots, loss_weight, 0, 0, 1.0))
        .bind(1, logits)
        .bind(3, weight)
        .bind(5, stats)
        .bind(6, dlogits)
        .bind(8, targets)
        .bind(9, lse)
        .dispatch(grid_1d((s.rows * s.cols).div_ceil(256)))
}
