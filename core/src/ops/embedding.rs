use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("embedding");
/// Rows per backward dispatch: a thread loops up to ~1.04 times per row, and
/// llvmpipe ends the loops of an invocation after 65,535 iterations in all.
const ROWS_PER_PASS: usize = 32_768;

/// (rows, V, d) from `tokens` (rows), `table` (V, d) and a (rows, d) tensor.
fn check(
    op: &'static str,
    tokens: &Tensor,
    table: &Tensor,
    rows_d: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (rows, shape) = (tokens.len(), table.shape());
    if shape.len() != 2 || rows_d.len() != rows * shape[1] {
        return Err(Error::shape(
            op,
            format!(
                "tokens {:?}, table '{}' {:?}, rows '{}' {:?}",
                tokens.shape(),
                table.name(),
                shape,
                rows_d.name(),
                rows_d.shape()
            ),
        ));
    }
    Ok((rows, shape[0], shape[1]))
}

/// `out[r] = scale · table[tokens[r]]` (a zero row for a token ≥ V).
pub fn forward(
    gpu: &Gpu,
    tokens: &Tensor,
    table: &Tensor,
    scale: f32,
    out: &Tensor,
) -> Result<Dispatch> {
    let (rows, vocab, d) = check("embedding", tokens, table, out)?;
    gpu.call(&SHADER, "embed_forward")
        .params(params![rows, 0u32, vocab, d, scale, false])
        .bind(1, tokens)
        .bind(2, table)
        .bind(3, out)
        .dispatch(grid_1d((rows * d).div_ceil(256)))
}

/// `dtable[v] (+)= scale · Σ_{tokens[r] = v} dout[r]`, summed in increasing r,
/// in passes of at most `ROWS_PER_PASS` rows (the later passes accumulate).
pub fn backward(
    gpu: &Gpu,
    tokens: &Tensor,
    dout: &Tensor,
    scale: f32,
    dtable: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let (rows, vocab, d) = check("embedding backward", tokens, dtable, dout)?;
    (0..rows.max(1))
        .step_by(ROWS_PER_PASS)
        .map(|first_row| {
            let pass_rows = ROWS_PER_PASS.min(rows - first_row);
            gpu.call(&SHADER, "embed_backward")
                .params(params![
                    pass_rows,
                    first_row,
                    vocab,
                    d,
                    scale,
                    accumulate || first_row > 0
                ])
                .bind(1, tokens)
                .bind(4, dout)
                .bind(5, dtable)
                .dispatch(grid_1d(vocab * d.div_ceil(256)))
        })
        .collect()
}
