use super::in_quads;
use crate::gpu::{Dispatch, Gpu, KernelCall, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("activation");

fn same(op: &'static str, a: &Tensor, b: &Tensor, ratio: usize) -> Result<()> {
    if a.len() != b.len() * ratio {
        return Err(Error::shape(
            op,
            format!(
                "'{}' {:?} vs '{}' {:?}",
                a.name(),
                a.shape(),
                b.name(),
                b.shape()
            ),
        ));
    }
    Ok(())
}

/// The kernel `entry` over `n` outputs in rows of `width`, with its grid.
fn call<'a>(gpu: &'a Gpu, entry: &'a str, n: usize, width: usize) -> (KernelCall<'a>, [u32; 3]) {
    let (call, per) = in_quads(gpu.call(&SHADER, entry), width);
    let grid = grid_1d((n / per).div_ceil(256));
    (call.params(params![n / per, width / per]), grid)
}

/// `y = x·σ(x)`.
pub fn silu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    same("silu", x, y, 1)?;
    let (call, grid) = call(gpu, "silu_forward", x.len(), x.len());
    call.bind(1, x).bind(2, y).dispatch(grid)
}

/// `dx = dy·silu'(x)`.
pub fn silu_backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    same("silu backward", x, dy, 1)?;
    same("silu backward", x, dx, 1)?;
    let (call, grid) = call(gpu, "silu_backward", x.len(), x.len());
    call.bind(1, x).bind(3, dy).bind(4, dx).dispatch(grid)
}

fn check_bias(op: &'static str, hidden: usize, bias: &Tensor) -> Result<()> {
    if bias.len() != 2 * hidden {
        return Err(Error::shape(
            op,
            format!(
                "bias '{}' {:?} for hidden {hidden}: want (2·hidden)",
                bias.name(),
                bias.shape()
            ),
        ));
    }
    Ok(())
}

/// `out = silu(a)·b` for `[a | b] = h + bias`, h (rows, 2·hidden) → out (rows, hidden).
pub fn swiglu_forward(
    gpu: &Gpu,
    hidden: usize,
    (h, bias): (&Tensor, &Tensor),
    out: &Tensor,
) -> Result<Dispatch> {
    same("swiglu", h, out, 2)?;
    check_bias("swiglu", hidden, bias)?;
    let (call, grid) = call(gpu, "swiglu_forward", out.len(), hidden);
    call.bind(1, h).bind(2, out).bind(5, bias).dispatch(grid)
}

/// `dh = [dout·b·silu'(a) | dout·silu(a)]` (also the bias's gradient
/// before its sum over rows).
pub fn swiglu_backward(
    gpu: &Gpu,
    hidden: usize,
    (h, bias): (&Tensor, &Tensor),
    dout: &Tensor,
    dh: &Tensor,
) -> Result<Dispatch> {
    same("swiglu backward", h, dout, 2)?;
    same("swiglu backward", dh, dout, 2)?;
    check_bias("swiglu backward", hidden, bias)?;
    let (call, grid) = call(gpu, "swiglu_backward", dout.len(), hidden);
    call.bind(1, h)
        .bind(5, bias)
        .bind(3, dout)
        .bind(4, dh)
        .dispatch(grid)
}
