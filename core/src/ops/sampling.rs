use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("sampling");

fn check_rows(logits: &Tensor, tokens: &Tensor, confidence: &Tensor) -> Result<usize> {
    let rows = tokens.len();
    if rows == 0 || !logits.len().is_multiple_of(rows) || confidence.len() != rows {
        return Err(Error::shape(
            "sampling",
            format!(
                "logits {:?}, tokens {:?}, confidence {:?}",
                logits.shape(),
                tokens.shape(),
                confidence.shape()
            ),
        ));
    }
    Ok(rows)
}

/// Per row: a draw from softmax(logits / temperature) (Gumbel-max on the
/// counter hash of `rng_key` (2 words) and `stream`) and its probability at
/// that temperature.
pub fn sample_rows(
    gpu: &Gpu,
    logits: &Tensor,
    rng_key: &Tensor,
    stream: u32,
    temperature: f32,
    tokens: &Tensor,
    confidence: &Tensor,
) -> Result<Dispatch> {
    let rows = check_rows(logits, tokens, confidence)?;
    if !(temperature > 0.0 && temperature.is_finite()) || rng_key.len() != 2 {
        return Err(Error::Invalid(format!(
            "sample_rows needs a temperature > 0 (got {temperature}) and a 2-word key"
        )));
    }
    gpu.call(&SHADER, "sample_rows")
        .params(params![
            rows,
            logits.len() / rows,
            1.0 / temperature,
            stream
        ])
        .bind(1, logits)
        .bind(2, tokens)
        .bind(3, confidence)
        .bind(4, rng_key)
        .dispatch(grid_1d(rows))
}

/// Per row: the best token (ties: lower id) and its softmax probability.
pub fn argmax_rows(
    gpu: &Gpu,
    logits: &Tensor,
    tokens: &Tensor,
    confidence: &Tensor,
) -> Result<Dispatch> {
    let rows = check_rows(logits, tokens, confidence)?;
    gpu.call(&SHADER, "argmax_rows")
        .params(params![rows, logits.len() / rows, 1.0f32, 0u32])
        .bind(1, logits)
        .bind(2, tokens)
        .bind(3, confidence)
        .dispatch(grid_1d(rows))
}
