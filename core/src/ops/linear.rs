use super::in_quads;
use super::matmul::{Matmul, matmul, matmul_split_k};
use super::reduce::sum_rows;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("linear");

/// Shapes of a linear layer applied to `rows` vectors: W is (d_out, d_in), as
/// in PyTorch's `nn.Linear`, so checkpoints map one to one.
#[derive(Clone, Copy, Debug)]
pub struct LinearShape {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
}

fn check(op: &'static str, s: LinearShape, x: &Tensor, w: &Tensor, y: &Tensor) -> Result<()> {
    if x.len() != s.rows * s.d_in || w.len() != s.d_out * s.d_in || y.len() != s.rows * s.d_out {
        return Err(Error::shape(
            op,
            format!(
                "x {:?}, w {:?}, y {:?} for {s:?}",
                x.shape(),
                w.shape(),
                y.shape()
            ),
        ));
    }
    Ok(())
}

/// A layer given its weight's half copy runs in mixed precision: all three
/// products round their operands to f16.
fn half_operands(w: &Tensor) -> bool {
    w.dtype() == DType::F16
}

/// `y = x·Wᵀ + b` (no bias when `b` is None).
pub fn forward(
    gpu: &Gpu,
    s: LinearShape,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    check("linear", s, x, w, y)?;
    let mut out = vec![matmul(
        gpu,
        x,
        w,
        y,
        Matmul::new(s.rows, s.d_out, s.d_in)
            .trans_b()
            .half_operands(half_operands(w)),
    )?];
    if let Some(b) = b {
        if b.len() != s.d_out {
            return Err(Error::shape(
                "linear",
                format!("bias {:?} for d_out {}", b.shape(), s.d_out),
            ));
        }
        let (call, quad) = in_quads(gpu.call(&SHADER, "bias_add"), s.d_out);
        out.push(
            call.params(params![s.rows, s.d_out / quad])
                .bind(1, b)
                .bind(2, y)
                .dispatch(grid_1d((s.rows * s.d_out / quad).div_ceil(256)))?,
        );
    }
    Ok(out)
}

/// Where each gradient of a linear layer goes; `accumulate` adds into the
/// existing contents (a tensor used in several places), else overwrites.
pub struct LinearGrads<'a> {
    pub dx: Option<&'a Tensor>,
    pub dw: &'a Tensor,
    pub db: Option<&'a Tensor>,
    pub accumulate_dx: bool,
    pub accumulate_dw: bool,
}

/// dx = dy·W, dW = dyᵀ·x, db = Σ_rows dy.
pub fn backward(
    gpu: &Gpu,
    s: LinearShape,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    g: LinearGrads,
) -> Result<Vec<Dispatch>> {
    check("linear backward", s, x, w, dy)?;
    let mut out = Vec::new();
    if let Some(dx) = g.dx {
        let mut mm = Matmul::new(s.rows, s.d_in, s.d_out).half_operands(half_operands(w));
        if g.accumulate_dx {
            mm = mm.accumulate();
        }
        out.push(matmul(gpu, dy, w, dx, mm)?);
    }
    let mut mm = Matmul::new(s.d_out, s.d_in, s.rows)
        .trans_a()
        .half_operands(half_operands(w));
    if g.accumulate_dw {
        mm = mm.accumulate();
    }
    out.extend(matmul_split_k(gpu, dy, x, g.dw, mm)?);
    if let Some(db) = g.db {
        out.extend(sum_rows(
            gpu,
            dy,
            db,
            (1, s.rows, s.d_out),
            g.accumulate_dw,
        )?);
    }
    Ok(out)
}
