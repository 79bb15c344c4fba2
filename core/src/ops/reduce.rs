use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("reduce");
const ROW_CHUNK: usize = 64;
/// Columns per workgroup of the second stage (shaders/reduce.wgsl).
const FINAL_COLS: usize = 32;
const ALL_CHUNK: usize = 4096;

/// `out (groups, cols) [+]= Σ_rows x (groups, rows, cols)`, deterministic:
/// one dispatch for up to 64 rows, else two. Allocates its scratch once, here.
pub fn sum_rows(
    gpu: &Gpu,
    x: &Tensor,
    out: &Tensor,
    (groups, rows, cols): (usize, usize, usize),
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    if x.len() != groups * rows * cols || out.len() != groups * cols {
        return Err(Error::shape(
            "sum_rows",
            format!(
                "x {:?} / out {:?} for ({groups}, {rows}, {cols})",
                x.shape(),
                out.shape()
            ),
        ));
    }
    let words = |chunks: usize| {
        params![
            groups, rows, cols, chunks, 0u32, 0u32, false, accumulate, 1.0f32
        ]
    };
    let final_stage = |partial: &Tensor, chunks: usize| {
        gpu.call(&SHADER, "sum_rows_final")
            .params(words(chunks))
            .bind(3, partial)
            .bind(4, out)
            .dispatch([cols.div_ceil(FINAL_COLS) as u32, 1, groups as u32])
    };
    if rows <= ROW_CHUNK {
        // x is already the stage-2 input: rows chunks of one row.
        return Ok(vec![final_stage(x, rows)?]);
    }
    let chunks = rows.div_ceil(ROW_CHUNK);
    let partial = gpu.zeros(
        &format!("{}.sum_rows", x.name()),
        &[groups, chunks, cols],
        DType::F32,
    )?;
    Ok(vec![
        gpu.call(&SHADER, "sum_rows_partial")
            .params(words(chunks))
            .bind(1, x)
            .bind(2, &partial)
            .dispatch([cols.div_ceil(256) as u32, chunks as u32, groups as u32])?,
        final_stage(&partial, chunks)?,
    ])
}

/// How [`sum_all`] combines the elements.
#[derive(Clone, Copy, Debug)]
pub struct SumAll {
    pub square: bool,
    pub scale: f32,
    pub out_index: usize,
    pub accumulate: bool,
}

impl Default for SumAll {
    fn default() -> Self {
        SumAll {
            square: false,
            scale: 1.0,
            out_index: 0,
            accumulate: false,
        }
    }
}

/// `out[out_index] [+]= scale * Σ x` (or Σ x²), deterministic.
pub fn sum_all(gpu: &Gpu, x: &Tensor, out: &Tensor, how: SumAll) -> Result<Vec<Dispatch>> {
    if how.out_index >= out.len() {
        return Err(Error::shape(
            "sum_all",
            format!("out_index {} outside '{}'", how.out_index, out.name()),
        ));
    }
    let n = x.len();
    let chunks = n.div_ceil(ALL_CHUNK).max(1);
    let partial = gpu.zeros(&format!("{}.sum_all", x.name()), &[chunks], DType::F32)?;
    let words = params![
        1u32,
        1u32,
        1u32,
        chunks,
        n,
        how.out_index,
        how.square,
        how.accumulate,
        how.scale
    ];
    Ok(vec![
        gpu.call(&SHADER, "sum_all_partial")
            .params(words.clone())
            .bind(1, x)
            .bind(2, &partial)
            .dispatch(grid_1d(chunks))?,
        gpu.call(&SHADER, "sum_all_final")
            .params(words)
            .bind(3, &partial)
            .bind(4, out)
            .dispatch([1, 1, 1])?,
    ])
}
