use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("random");

fn check_key(rng_key: &Tensor) -> Result<()> {
    if rng_key.len() != 2 {
        return Err(Error::shape(
            "random",
            format!("rng_key '{}' must hold 2 words", rng_key.name()),
        ));
    }
    Ok(())
}

/// `out = std · N(0, 1)`, element i a function of (i, stream, rng_key).
pub fn randn(gpu: &Gpu, rng_key: &Tensor, stream: u32, std: f32, out: &Tensor) -> Result<Dispatch> {
    check_key(rng_key)?;
    let n = out.len();
    gpu.call(&SHADER, "randn")
        .params(params![n, stream, std])
        .bind(1, rng_key)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(2).div_ceil(256)))
}

fn dropout(
    gpu: &Gpu,
    entry: &'static str,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    check_key(rng_key)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "dropout probability {p} outside [0, 1)"
        )));
    }
    if x.len() != out.len() {
        return Err(Error::shape(
            "dropout",
            format!(
                "'{}' {:?} vs '{}' {:?}",
                x.name(),
                x.shape(),
                out.name(),
                out.shape()
            ),
        ));
    }
    let n = x.len();
    gpu.call(&SHADER, entry)
        .params(params![n, stream, p])
        .bind(1, rng_key)
        .bind(2, x)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// `out = x · keep / (1 − p)`; the mask is regenerated, not stored.
pub fn dropout_forward(
    gpu: &Gpu,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    dropout(gpu, "dropout_forward", rng_key, stream, p, x, out)
}

/// `dx = dy · keep / (1 − p)` with the forward's mask (same key and stream).
pub fn dropout_backward(
    gpu: &Gpu,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    dropout(gpu, "dropout_backward", rng_key, stream, p, dy, dx)
}
