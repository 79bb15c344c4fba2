use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("elementwise");

fn same_len(op: &'static str, ts: &[&Tensor]) -> Result<usize> {
    let n = ts[0].len();
    if let Some(t) = ts.iter().find(|t| t.len() != n) {
        return Err(Error::shape(
            op,
            format!(
                "'{}' has {} elements, '{}' has {n}",
                t.name(),
                t.len(),
                ts[0].name()
            ),
        ));
    }
    Ok(n)
}

/// `out = value`.
pub fn fill(gpu: &Gpu, out: &Tensor, value: f32) -> Result<Dispatch> {
    let n = out.len();
    gpu.call(&SHADER, "fill")
        .params(params![n, value, 0.0f32])
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// `out = alpha * x + beta * out`.
pub fn axpby(gpu: &Gpu, alpha: f32, x: &Tensor, beta: f32, out: &Tensor) -> Result<Dispatch> {
    let n = same_len("axpby", &[x, out])?;
    gpu.call(&SHADER, "axpby")
        .params(params![n, alpha, beta])
        .bind(1, x)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// `out = alpha * x + beta * y`.
pub fn add(
    gpu: &Gpu,
    alpha: f32,
    x: &Tensor,
    beta: f32,
    y: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let n = same_len("add", &[x, y, out])?;
    gpu.call(&SHADER, "add")
        .params(params![n, alpha, beta])
        .bind(1, x)
        .bind(2, y)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// `out = alpha * x * y`.
pub fn mul(gpu: &Gpu, alpha: f32, x: &Tensor, y: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let n = same_len("mul", &[x, y, out])?;
    gpu.call(&SHADER, "mul")
        .params(params![n, alpha, 0.0f32])
        .bind(1, x)
        .bind(2, y)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}
