use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("norm");

pub use crate::config::NormKind;

/// Normalisation of `rows` vectors of `cols`, with its saved statistics.
#[derive(Clone, Copy, Debug)]
pub struct NormShape {
    pub rows: usize,
    pub cols: usize,
    pub eps: f32,
}

fn check(s: NormShape, matrices: &[&Tensor], vectors: &[&Tensor]) -> Result<()> {
    let bad_matrix = matrices.iter().find(|t| t.len() != s.rows * s.cols);
    let bad_vector = vectors.iter().find(|t| t.len() != s.rows);
    if let Some(t) = bad_matrix.or(bad_vector) {
        return Err(Error::shape(
            "norm",
            format!("'{}' {:?} does not fit {s:?}", t.name(), t.shape()),
        ));
    }
    Ok(())
}

/// `y = norm(x)`; saves `rstd` (and `mean` for LayerNorm, which must then be given).
pub fn forward(
    gpu: &Gpu,
    kind: NormKind,
    s: NormShape,
    x: &Tensor,
    y: &Tensor,
    mean: Option<&Tensor>,
    rstd: &Tensor,
) -> Result<Dispatch> {
    check(s, &[x, y], &[rstd])?;
    let call = gpu.call(
        &SHADER,
        match kind {
            NormKind::Rms => "rmsnorm_forward",
            NormKind::Layer => "layernorm_forward",
        },
    );
    let call = call
        .params(params![s.rows, s.cols, s.eps, false])
        .bind(1, x)
        .bind(2, y)
        .bind(4, rstd);
    let call = match (kind, mean) {
        (NormKind::Rms, _) => call,
        (NormKind::Layer, Some(m)) => {
            check(s, &[], &[m])?;
            call.bind(3, m)
        }
        (NormKind::Layer, None) => {
            return Err(Error::shape("layernorm", "the forward needs a mean tensor"));
        }
    };
    call.dispatch(grid_1d(s.rows))
}

/// `dx (+)= ∂norm/∂x · dy`, from the forward's input and saved statistics.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    kind: NormKind,
    s: NormShape,
    x: &Tensor,
    mean: Option<&Tensor>,
    rstd: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    check(s, &[x, dy, dx], &[rstd])?;
    let call = gpu.call(
        &SHADER,
        match kind {
            NormKind::Rms => "rmsnorm_backward",
            NormKind::Layer => "layernorm_backward",
        },
    );
    let call = call
        .params(params![s.rows, s.cols, s.eps, accumulate])
        .bind(1, x)
        .bind(6, rstd)
        .bind(7, dy)
        .bind(8, dx);
    let call = match (kind, mean) {
        (NormKind::Rms, _) => call,
        (NormKind::Layer, Some(m)) => {
            check(s, &[], &[m])?;
            call.bind(5, m)
        }
        (NormKind::Layer, None) => {
            return Err(Error::shape(
                "layernorm",
                "the backward needs the saved mean",
            ));
        }
    };
    call.dispatch(grid_1d(s.rows))
}
