use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("sampling");

/// Per row: the best token (ties: lower id) and its softmax probability.
pub fn argmax_rows(
    gpu: &Gpu,
    logits: &Tensor,
    tokens: &Tensor,
    confidence: &Tensor,
) -> Result<Dispatch> {
    let rows = tokens.len();
    if rows == 0 || !logits.len().is_multiple_of(rows) || confidence.len() != rows {
        return Err(Error::shape(
            "argmax_rows",
            format!(
                "logits {:?}, tokens {:?}, confidence {:?}",
                logits.shape(),
                tokens.shape(),
                confidence.shape()
            ),
        ));
    }
    gpu.call(&SHADER, "argmax_rows")
        .params(params![rows, logits.len() / rows])
        .bind(1, logits)
        .bind(2, tokens)
        .bind(3, confidence)
        .dispatch(grid_1d(rows))
}
