//! RMSNorm of rows without affine parameters: the embedding table's unit
//! rows (Ê = rmsnorm(E)). The blocks' norms are fused with their AdaLN
//! modulation (`ops::adaln`).

use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("norm");

/// Normalisation of `rows` vectors of `cols`, with its saved statistics.
#[derive(Clone, Copy, Debug)]
pub struct NormShape {
    pub rows: usize,
    pub cols: usize,
    pub eps: f32,
}

fn check(s: NormShape, matrices: &[&Tensor], rstd: &Tensor) -> Result<()> {
    let bad_matrix = matrices
        .iter()
        .copied()
        .find(|t| t.len() != s.rows * s.cols);
    if let Some(t) = bad_matrix.or((rstd.len() != s.rows).then_some(rstd)) {
        return Err(Error::shape(
            "rmsnorm",
            format!("'{}' {:?} does not fit {s:?}", t.name(), t.shape()),
        ));
    }
    Ok(())
}

/// `y = rmsnorm(x)`; saves `rstd`.
pub fn forward(gpu: &Gpu, s: NormShape, x: &Tensor, y: &Tensor, rstd: &Tensor) -> Result<Dispatch> {
    check(s, &[x, y], rstd)?;
    gpu.call(&SHADER, "rmsnorm_forward")
        .params(params![s.rows, s.cols, s.eps])
        .bind(1, x)
        .bind(2, y)
        .bind(3, rstd)
        .dispatch(grid_1d(s.rows))
}

/// `dx = ∂rmsnorm/∂x · dy`, from the forward's input and saved `rstd`.
pub fn backward(
    gpu: &Gpu,
    s: NormShape,
    x: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    check(s, &[x, dy, dx], rstd)?;
    gpu.call(&SHADER, "rmsnorm_backward")
        .params(params![s.rows, s.cols, s.eps])
        .bind(1, x)
        .bind(4, rstd)
        .bind(5, dy)
        .bind(6, dx)
        .dispatch(grid_1d(s.rows))
}
