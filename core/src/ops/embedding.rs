use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("embedding");
/// Widest row the backward handles (256 threads × 8 column slots).
pub const MAX_D: usize = 2048;

fn check(
    op: &'static str,
    tokens: &Tensor,
    table: &Tensor,
    rows_d: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (rows, vocab) = (tokens.len(), table.shape()[0]);
    let d = table.len() / vocab.max(1);
    if table.shape().len() != 2 || rows_d.len() != rows * d || d > MAX_D {
        return Err(Error::shape(
            op,
            format!(
                "tokens {:?}, table '{}' {:?}, rows '{}' {:?} (d ≤ {MAX_D})",
                tokens.shape(),
                table.name(),
                table.shape(),
                rows_d.name(),
                rows_d.shape()
            ),
        ));
    }
    Ok((rows, vocab, d))
}

/// `out[r] = scale · table[tokens[r]]`.
pub fn forward(
    gpu: &Gpu,
    tokens: &Tensor,
    table: &Tensor,
    scale: f32,
    out: &Tensor,
) -> Result<Dispatch> {
    let (rows, vocab, d) = check("embedding", tokens, table, out)?;
    gpu.call(&SHADER, "embed_forward")
        .params(params![rows, vocab, d, scale, false])
        .bind(1, tokens)
        .bind(2, table)
        .bind(3, out)
        .dispatch(grid_1d((rows * d).div_ceil(256)))
}

/// `dtable[v] (+)= scale · Σ_{tokens[r] = v} dout[r]`, deterministic.
pub fn backward(
    gpu: &Gpu,
    tokens: &Tensor,
    dout: &Tensor,
    scale: f32,
    dtable: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let (rows, vocab, d) = check("embedding backward", tokens, dtable, dout)?;
    gpu.call(&SHADER, "embed_backward")
        .params(params![rows, vocab, d, scale, accumulate])
        .bind(1, tokens)
        .bind(4, dout)
        .bind(5, dtable)
        .dispatch(grid_1d(vocab))
}
