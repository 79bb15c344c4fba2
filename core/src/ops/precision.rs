//! Mixed precision: f16 copies of the f32 master weights for the matmuls
//! (see shaders/precision.wgsl and the half-operand variant of matmul).

use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("precision");

/// The compile-time switch of the f16 variant (the file as written is f32).
pub const HALF: (&str, &str) = ("Half", "f16");

/// `weight_half = f16(weight)`, element for element; needs SHADER_F16.
pub fn half_copy(gpu: &Gpu, weight: &Tensor, weight_half: &Tensor) -> Result<Dispatch> {
    if weight.dtype() != DType::F32
        || weight_half.dtype() != DType::F16
        || weight.len() != weight_half.len()
    {
        return Err(Error::shape(
            "half_copy",
            format!(
                "'{}' {:?} {:?} into '{}' {:?} {:?}: an f32 tensor into an f16 one of its length",
                weight.name(),
                weight.dtype(),
                weight.shape(),
                weight_half.name(),
                weight_half.dtype(),
                weight_half.shape()
            ),
        ));
    }
    gpu.require_f16("the half copy of a weight (mixed precision)")?;
    let n = weight.len();
    gpu.call(&SHADER, "half_copy")
        .constant(HALF.0, HALF.1)
        .params(params![n])
        .bind(1, weight)
        .bind(2, weight_half)
        .dispatch(grid_1d(n.div_ceil(256)))
}
