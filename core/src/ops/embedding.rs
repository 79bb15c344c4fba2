use super::reduce::sum_rows;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("embedding");
/// Rows per backward segment at most: a thread loops up to ~1.04 times per
/// row, and llvmpipe ends the loops of an invocation after 65,535 iterations
/// in all.
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
        .params(params![rows, rows, vocab, d, scale, false])
        .bind(1, tokens)
        .bind(2, table)
        .bind(3, out)
        .dispatch(grid_1d((rows * d).div_ceil(256)))
}

/// `dtable[v] (+)= scale · Σ_{tokens[r] = v} dout[r]` for a fixed (rows,
/// V, d): the rows cut into segments gathered side by side into `partial`,
/// then added in segment order (see shaders/embedding.wgsl), so every run
/// sums in the same order.
pub struct EmbeddingBackward {
    rows: usize,
    vocab: usize,
    d: usize,
    segment_rows: usize,
    segments: usize,
    /// (V, segments, d) with more than one segment.
    partial: Option<Tensor>,
}

/// Workgroups worth filling the GPU with (a few per multiprocessor).
const WORKGROUPS_WANTED: usize = 2048;

impl EmbeddingBackward {
    pub fn new(gpu: &Gpu, (rows, vocab, d): (usize, usize, usize), name: &str) -> Result<Self> {
        let gathers = vocab * d.div_ceil(256);
        let wanted = WORKGROUPS_WANTED.div_ceil(gathers.max(1)).min(64);
        // At least a chunk of 256 rows per segment, at most ROWS_PER_PASS.
        let segment_rows = rows
            .div_ceil(wanted)
            .next_multiple_of(256)
            .clamp(1, ROWS_PER_PASS);
        let segments = rows.div_ceil(segment_rows).max(1);
        let partial = (segments > 1)
            .then(|| {
                gpu.zeros(
                    &format!("{name}.partial"),
                    &[vocab, segments, d],
                    DType::F32,
                )
            })
            .transpose()?;
        Ok(EmbeddingBackward {
            rows,
            vocab,
            d,
            segment_rows,
            segments,
            partial,
        })
    }

    pub fn record(
        &self,
        gpu: &Gpu,
        tokens: &Tensor,
        dout: &Tensor,
        scale: f32,
        dtable: &Tensor,
        accumulate: bool,
    ) -> Result<Vec<Dispatch>> {
        let shape = check("embedding backward", tokens, dtable, dout)?;
        if shape != (self.rows, self.vocab, self.d) {
            return Err(Error::shape(
                "embedding backward",
                format!(
                    "(rows, V, d) {shape:?} for a backward sized for {:?}",
                    (self.rows, self.vocab, self.d)
                ),
            ));
        }
        let target = self.partial.as_ref().unwrap_or(dtable);
        let [x, y, _] = grid_1d(self.vocab * self.d.div_ceil(256));
        let gather = gpu
            .call(&SHADER, "embed_backward")
            .params(params![
                self.rows,
                self.segment_rows,
                self.vocab,
                self.d,
                scale,
                accumulate && self.partial.is_none()
            ])
            .bind(1, tokens)
            .bind(4, dout)
            .bind(5, target)
            .dispatch([x, y, self.segments as u32])?;
        let mut out = vec![gather];
        if let Some(partial) = &self.partial {
            let sum = (self.vocab, self.segments, self.d);
            out.extend(sum_rows(gpu, partial, dtable, sum, accumulate)?);
        }
        Ok(out)
    }
}
